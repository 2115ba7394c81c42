//! The web console in a real headless Chromium (Debian's, through
//! chromedriver), against a real admin service and two API nodes on the
//! test's own nats-server. Screenshots of each main screen go to
//! `target/test-output/console/` (or `$KEYLEDGER_TEST_OUTPUT/console/`).

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    clippy::too_many_lines
)]

use std::path::PathBuf;
use std::time::Duration;

use keyledger_tests::{Browser, System, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

fn output_dir() -> PathBuf {
    let base = std::env::var_os("KEYLEDGER_TEST_OUTPUT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-output"),
        PathBuf::from,
    );
    let dir = base.join("console");
    std::fs::create_dir_all(&dir).expect("creates the screenshot folder");
    dir
}

/// The texts of the notifications on screen.
async fn notifications(browser: &Browser) -> Vec<String> {
    let v = browser
        .js(
            "return [...document.querySelectorAll('#notifications .toast span')].map(t => t.textContent)",
            vec![],
        )
        .await;
    serde_json::from_value(v).unwrap()
}

/// Waits until a notification containing `text` is on screen.
async fn notified(browser: &Browser, text: &str) -> bool {
    browser
        .until(
            WAIT,
            "return [...document.querySelectorAll('#notifications .toast span')].some(t => t.textContent.includes(arguments[0]))",
            vec![json!(text)],
        )
        .await
}

/// The rows of the keys table as the page shows them.
async fn rows(browser: &Browser) -> Vec<Value> {
    let v = browser
        .js(
            "return [...document.querySelectorAll('#keys-body tr')].map(r => ({
                id: r.dataset.id,
                cells: [...r.querySelectorAll('td')].map(c => c.textContent.trim()),
            }))",
            vec![],
        )
        .await;
    serde_json::from_value(v).unwrap()
}

/// Waits until the element `id` is shown.
async fn visible(browser: &Browser, id: &str) -> bool {
    browser
        .until(
            WAIT,
            "return !document.getElementById(arguments[0]).hidden",
            vec![json!(id)],
        )
        .await
}

/// Waits until the text of element `id` holds `text`.
async fn says(browser: &Browser, id: &str, text: &str) -> bool {
    browser
        .until(
            WAIT,
            "return document.getElementById(arguments[0]).textContent.includes(arguments[1])",
            vec![json!(id), json!(text)],
        )
        .await
}

/// Waits until the table shows exactly the keys named `names` (in order).
async fn shows(browser: &Browser, names: &[&str]) -> bool {
    let want = json!(names);
    browser
        .until(
            WAIT,
            "const names = [...document.querySelectorAll('#keys-body tr td.name')]
                 .map(c => c.firstChild ? c.firstChild.textContent : '');
             return JSON.stringify(names) === JSON.stringify(arguments[0]) &&
                 !document.getElementById('keys-table').hasAttribute('aria-busy')",
            vec![want],
        )
        .await
}

async fn dialog_open(browser: &Browser, id: &str) -> bool {
    browser
        .until(
            WAIT,
            "return document.getElementById(arguments[0]).open === true",
            vec![json!(id)],
        )
        .await
}

async fn dialog_closed(browser: &Browser, id: &str) -> bool {
    browser
        .until(
            WAIT,
            "return document.getElementById(arguments[0]).open === false",
            vec![json!(id)],
        )
        .await
}

/// Waits until every node answers `want` for `key` and `method`.
async fn nodes_answer(system: &System, key: &str, method: &str, want: StatusCode) -> bool {
    eventually(WAIT, || async {
        system
            .verify_all(key, method)
            .await
            .iter()
            .all(|s| *s == want)
    })
    .await
}

async fn row_button(browser: &Browser, id: &str, action: &str) {
    browser
        .click(&format!(
            "#keys-body tr[data-id='{id}'] button[data-action='{action}']"
        ))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_keys_in_the_console_and_the_nodes_enforce_them() {
    let system = System::start().await.unwrap();
    let out = output_dir();
    let browser = Browser::start(1280, 860).await.unwrap();
    let admin = &system.admin.url;

    // Log in: a wrong key is refused with a clear message, an admin key enters.
    browser.client.goto(&format!("{admin}/")).await.unwrap();
    assert!(
        browser
            .until(
                WAIT,
                "return document.activeElement.id === 'login-key'",
                vec![]
            )
            .await,
        "the login field has the focus"
    );
    browser.screenshot(&out, "01-login").await;
    browser
        .type_into("#login-key", "not-an-admin-key-0123456789")
        .await;
    browser.click("#login-submit").await;
    assert!(
        says(&browser, "login-error", "not accepted").await,
        "a wrong key gets a clear message"
    );
    browser.type_into("#login-key", &system.bootstrap).await;
    browser.click("#login-submit").await;
    assert!(
        says(&browser, "login-error", "bootstrap token").await,
        "the bootstrap token is explained, not accepted"
    );
    browser.type_into("#login-key", &system.token).await;
    browser.click("#login-submit").await;
    assert!(
        visible(&browser, "keys-view").await,
        "the API Keys page opens"
    );
    assert!(shows(&browser, &["test admin"]).await);
    assert!(
        browser
            .until(
                WAIT,
                "return document.querySelector('#keys-body .badge.me') !== null",
                vec![]
            )
            .await,
        "the session's own admin key is marked"
    );

    // Add a read-only key (the toggle is on by default) and read it from the dialog.
    browser.click("#add-key").await;
    assert!(dialog_open(&browser, "create-dialog").await);
    let read_only_default = browser
        .js(
            "return document.getElementById('create-read-only').checked",
            vec![],
        )
        .await;
    assert_eq!(read_only_default, json!(true), "Read Only is on by default");
    assert_eq!(
        browser.js("return document.activeElement.id", vec![]).await,
        json!("create-name"),
        "the dialog puts the focus on its first field"
    );
    browser.type_into("#create-name", "billing reader").await;
    browser.screenshot(&out, "02-create-dialog").await;
    browser.click("#create-save").await;
    assert!(dialog_open(&browser, "secret-dialog").await);
    let key = browser
        .js("return document.getElementById('secret-key').value", vec![])
        .await;
    let key = key.as_str().unwrap().to_owned();
    assert_eq!(key.len(), 40, "the dialog shows the whole key");
    let warning = browser
        .js(
            "return document.getElementById('secret-warning').textContent",
            vec![],
        )
        .await;
    assert!(
        warning
            .as_str()
            .unwrap()
            .contains("will not be shown again")
    );
    assert!(notified(&browser, "Saved").await, "the create is confirmed");
    browser.screenshot(&out, "03-new-key-created").await;
    browser.click("#copy-key").await;
    assert!(notified(&browser, "Copied").await);
    browser.click("#secret-close").await;
    assert!(dialog_closed(&browser, "secret-dialog").await);
    let leftover = browser
        .js(
            "return [document.getElementById('secret-key').value,
                     document.documentElement.outerHTML.includes(arguments[0]),
                     localStorage.length, location.href.includes(arguments[0])]",
            vec![json!(key)],
        )
        .await;
    assert_eq!(
        leftover,
        json!(["", false, 0, false]),
        "closing the dialog drops the key; nothing is in local storage or the URL"
    );
    assert!(shows(&browser, &["test admin", "billing reader"]).await);
    let billing = rows(&browser).await[1].clone();
    let id = billing["id"].as_str().unwrap().to_owned();
    let prefix = billing["cells"][1].as_str().unwrap().to_owned();
    assert_eq!(
        prefix,
        key[..8],
        "the row shows the key's leading 8 characters"
    );
    assert_eq!(billing["cells"][2], "Yes", "Read Only");
    assert_eq!(billing["cells"][3], "Yes", "Enabled");

    // The nodes enforce it: GET allowed, POST forbidden.
    assert!(nodes_answer(&system, &key, "GET", StatusCode::OK).await);
    assert!(nodes_answer(&system, &key, "POST", StatusCode::FORBIDDEN).await);

    // Search by name, then by prefix, as you type, against the server.
    system.create_key("shipping writer", false).await;
    assert!(shows(&browser, &["test admin", "billing reader"]).await);
    browser.type_into("#search", "BILLING").await;
    assert!(shows(&browser, &["billing reader"]).await, "search by name");
    browser.type_into("#search", &key[..8]).await;
    assert!(
        shows(&browser, &["billing reader"]).await,
        "search by prefix"
    );
    browser.screenshot(&out, "04-search-by-prefix").await;
    // A whole key pasted into the search is searched by its prefix, and
    // is neither sent nor shown.
    browser.type_into("#search", &key).await;
    assert!(
        browser
            .until(
                WAIT,
                "return document.getElementById('search').value === arguments[0]",
                vec![json!(&key[..8])]
            )
            .await
    );
    assert!(shows(&browser, &["billing reader"]).await);
    let pasted = browser
        .js(
            "return [document.getElementById('search').value,
                     document.documentElement.outerHTML.includes(arguments[0])]",
            vec![json!(key)],
        )
        .await;
    assert_eq!(pasted, json!([&key[..8], false]));
    browser.type_into("#search", "shipping").await;
    assert!(shows(&browser, &["shipping writer"]).await);
    browser.type_into("#search", "billing").await;
    assert!(shows(&browser, &["billing reader"]).await);

    // Edit to read-write: POST is now allowed on the nodes.
    row_button(&browser, &id, "edit").await;
    assert!(dialog_open(&browser, "edit-dialog").await);
    let form = browser
        .js(
            "return [document.getElementById('edit-name').value,
                     document.getElementById('edit-read-only').checked,
                     document.getElementById('edit-enabled').checked,
                     document.getElementById('edit-prefix').textContent]",
            vec![],
        )
        .await;
    assert_eq!(form, json!(["billing reader", true, true, prefix]));
    browser.click("#edit-read-only").await;
    browser.screenshot(&out, "05-edit-dialog").await;
    browser.click("#edit-save").await;
    assert!(dialog_closed(&browser, "edit-dialog").await);
    assert!(notified(&browser, "read-write, enabled").await);
    assert!(nodes_answer(&system, &key, "POST", StatusCode::OK).await);
    assert!(
        browser
            .until(
                WAIT,
                "return document.activeElement.dataset.action === 'edit' &&
                     document.activeElement.dataset.id === arguments[0]",
                vec![json!(id)]
            )
            .await,
        "closing a dialog gives the focus back to the button that opened it: {}",
        browser
            .js(
                "return document.activeElement.outerHTML.slice(0, 120)",
                vec![]
            )
            .await
    );

    // Disable: the nodes answer 401. Rename in the same save.
    row_button(&browser, &id, "edit").await;
    assert!(dialog_open(&browser, "edit-dialog").await);
    browser.type_into("#edit-name", "billing (old)").await;
    browser.click("#edit-enabled").await;
    browser.click("#edit-save").await;
    assert!(notified(&browser, "read-write, disabled").await);
    assert!(nodes_answer(&system, &key, "GET", StatusCode::UNAUTHORIZED).await);
    browser.type_into("#search", "").await;
    assert!(
        shows(
            &browser,
            &["test admin", "billing (old)", "shipping writer"]
        )
        .await
    );
    let row = rows(&browser).await[1].clone();
    assert_eq!(row["cells"][2], "No", "Read Only");
    assert_eq!(row["cells"][3], "No", "Enabled");
    browser.screenshot(&out, "06-keys-page").await;

    // History: who changed what, from the row.
    row_button(&browser, &id, "history").await;
    assert!(dialog_open(&browser, "history-dialog").await);
    let history = browser
        .js(
            "return [...document.querySelectorAll('#history-body tr')]
                 .map(r => r.children[2].textContent + ' by ' + r.children[4].textContent)",
            vec![],
        )
        .await;
    let admin_prefix = &system.token[..8];
    assert_eq!(
        history,
        json!([
            format!("Created by admin key {admin_prefix}"),
            format!("ScopeChanged by admin key {admin_prefix}"),
            format!("Renamed by admin key {admin_prefix}"),
            format!("Disabled by admin key {admin_prefix}"),
        ])
    );
    browser.screenshot(&out, "07-history").await;
    browser.click("#history-dialog [data-close]").await;
    assert!(dialog_closed(&browser, "history-dialog").await);

    // Remove, after confirming: revoked everywhere and gone from the list.
    row_button(&browser, &id, "remove").await;
    assert!(dialog_open(&browser, "remove-dialog").await);
    browser.screenshot(&out, "08-remove-confirm").await;
    browser.click("#remove-confirm").await;
    assert!(notified(&browser, "Removed").await);
    assert!(shows(&browser, &["test admin", "shipping writer"]).await);
    assert!(nodes_answer(&system, &key, "GET", StatusCode::UNAUTHORIZED).await);
    let (status, _) = system
        .admin_call(Method::GET, &format!("/v1/keys/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A failure is reported too: a key removed elsewhere while being edited.
    let doomed = system.create_key("doomed", true).await;
    browser.click("#menu-keys").await;
    assert!(shows(&browser, &["test admin", "shipping writer", "doomed"]).await);
    row_button(&browser, &doomed.id, "edit").await;
    assert!(dialog_open(&browser, "edit-dialog").await);
    system.remove_key(&doomed.id).await;
    browser.click("#edit-enabled").await;
    browser.click("#edit-save").await;
    assert!(
        notified(&browser, "Could not save the key").await,
        "{:?}",
        notifications(&browser).await
    );
    browser.screenshot(&out, "09-error-notification").await;

    // Pagination: hundreds of keys, page after page, none skipped or repeated.
    for i in 0..230 {
        system.create_key(&format!("bulk {i:03}"), true).await;
    }
    browser.click("#menu-keys").await;
    browser.type_into("#search", "bulk").await;
    assert!(
        browser
            .until(
                WAIT,
                "return document.querySelectorAll('#keys-body tr').length === 25 &&
                     document.querySelector('#keys-body td.name').textContent === 'bulk 000'",
                vec![]
            )
            .await
    );
    let mut seen = Vec::new();
    loop {
        let page = rows(&browser).await;
        assert!(!page.is_empty());
        seen.extend(
            page.iter()
                .map(|r| r["cells"][0].as_str().unwrap().to_owned()),
        );
        let last = page.last().unwrap()["cells"][0]
            .as_str()
            .unwrap()
            .to_owned();
        let more = browser
            .js(
                "return !document.getElementById('next-page').disabled",
                vec![],
            )
            .await;
        if more != json!(true) {
            break;
        }
        browser.click("#next-page").await;
        assert!(
            browser
                .until(
                    WAIT,
                    "const first = document.querySelector('#keys-body td.name');
                     return first !== null && first.textContent > arguments[0] &&
                         !document.getElementById('keys-table').hasAttribute('aria-busy')",
                    vec![json!(last)]
                )
                .await,
            "the next page opens after {last}"
        );
    }
    let want: Vec<String> = (0..230).map(|i| format!("bulk {i:03}")).collect();
    assert_eq!(seen, want, "every key once, in order");
    browser.click("#prev-page").await;
    assert!(
        browser
            .until(
                WAIT,
                "return document.querySelector('#keys-body td.name').textContent === 'bulk 200'",
                vec![]
            )
            .await,
        "Previous goes back a page"
    );

    // On a phone, the same page reads as cards.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.type_into("#search", "").await;
    assert!(
        shows(&browser, &{
            let mut names = vec!["test admin", "shipping writer"];
            names.extend(want.iter().take(23).map(String::as_str));
            names
        })
        .await
    );
    browser.screenshot(&out, "10-keys-page-phone").await;

    // An admin key revoked mid-session ends the session at its next request.
    let (status, second) = system
        .admin_call(
            Method::POST,
            "/v1/keys",
            Some(json!({ "name": "second admin", "admin": true, "read_only": true })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    browser.click("#logout").await;
    assert!(visible(&browser, "login-view").await);
    let stored = browser.js("return sessionStorage.length", vec![]).await;
    assert_eq!(stored, json!(0), "logging out forgets the admin key");
    browser
        .type_into("#login-key", second["key"].as_str().unwrap())
        .await;
    browser.click("#login-submit").await;
    assert!(visible(&browser, "keys-view").await);
    // A read-only admin is told so, and offered nothing it cannot do.
    assert!(says(&browser, "who", "(read-only)").await);
    let offered = browser
        .js(
            "return [document.getElementById('add-key').disabled,
                     [...document.querySelectorAll('#keys-body button[data-action=edit]')].every(b => b.disabled),
                     [...document.querySelectorAll('#keys-body button[data-action=history]')].some(b => !b.disabled)]",
            vec![],
        )
        .await;
    assert_eq!(offered, json!([true, true, true]));
    let (status, _) = system
        .update_key(second["id"].as_str().unwrap(), json!({ "enabled": false }))
        .await;
    assert_eq!(status, StatusCode::OK);
    browser.click("#menu-keys").await;
    assert!(
        browser
            .until(
                WAIT,
                "return !document.getElementById('login-view').hidden &&
                     document.getElementById('login-error').textContent.includes('no longer accepted')",
                vec![]
            )
            .await,
        "a disabled admin key is logged out with a reason"
    );

    browser.close().await;
}

#[tokio::test]
async fn the_console_and_readiness_are_public_and_tell_nothing_of_the_ledger() {
    let system = System::start().await.unwrap();
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let response = system
            .http
            .get(format!("{}{path}", system.admin.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        assert!(header("content-security-policy").contains("default-src 'none'"));
        assert!(header("content-security-policy").contains("script-src 'self'"));
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("x-frame-options"), "DENY");
    }
    // The console is public; the API behind it is not, and admin's
    // readiness (for load balancers) tells nothing of the ledger.
    let response = system
        .http
        .get(format!("{}/v1/keys", system.admin.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let ready: Value = system
        .http
        .get(format!("{}/readyz", system.admin.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], json!(true), "{ready}");
    for private in ["chain", "keys", "poisoned_keys", "stream"] {
        assert!(
            ready.get(private).is_none(),
            "/readyz shows {private}: {ready}"
        );
    }
}
