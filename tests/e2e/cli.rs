//! `keyledger keys …` against a real admin service and node.

use std::time::Duration;

use keyledger_tests::{Process, System, eventually, free_port};
use reqwest::StatusCode;
use serde_json::Value;

/// Runs `keyledger keys <args>` with the system's admin URL and admin key.
/// Returns (success, stdout, stderr).
fn keys(sys: &System, dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    keys_as(
        sys,
        dir,
        args,
        &[("KEYLEDGER_ADMIN_KEY", sys.token.as_str())],
    )
}

fn keys_as(
    sys: &System,
    dir: &std::path::Path,
    args: &[&str],
    credential: &[(&str, &str)],
) -> (bool, String, String) {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    let mut envs = vec![("KEYLEDGER_ADMIN_URL", sys.admin.url.as_str())];
    envs.extend_from_slice(credential);
    let mut p = Process::spawn("keys", dir, &all, &envs).unwrap();
    let status = p.wait(Duration::from_secs(20)).unwrap();
    let out = std::fs::read_to_string(&p.stdout).unwrap();
    let err = std::fs::read_to_string(&p.stderr).unwrap();
    (status.success(), out, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_cli_manages_keys_and_the_nodes_follow() {
    let sys = System::with_nodes(1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let node_says = |key: String, method: &'static str, want: StatusCode| {
        let sys = &sys;
        async move {
            eventually(Duration::from_secs(5), || async {
                sys.verify(0, &key, method).await == want
            })
            .await
        }
    };

    // create prints the key once, says so, and makes a read-only key by default.
    let (ok, out, err) = keys(&sys, d, &["create", "cli reader"]);
    assert!(ok, "{out}{err}");
    assert!(err.contains("only time the key is shown"), "{err}");
    let key = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("key:"))
        .map(|k| k.trim().to_owned())
        .unwrap();
    assert_eq!(key.len(), 40, "{out}");
    assert!(out.contains("read-only"), "{out}");
    assert!(node_says(key.clone(), "GET", StatusCode::OK).await);
    assert!(node_says(key.clone(), "POST", StatusCode::FORBIDDEN).await);
    let prefix = &key[..8];

    // --json gives the API's own answer.
    let (ok, out, _) = keys(&sys, d, &["create", "cli writer", "--read-write", "--json"]);
    assert!(ok);
    let writer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(writer["read_only"], false);
    assert_eq!(writer["key"].as_str().unwrap().len(), 40);

    // list: a table by default, filtered by name or prefix.
    let (ok, out, err) = keys(&sys, d, &["list"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("id "), "{out}");
    assert!(
        out.contains("\"cli reader\"") && out.contains("\"cli writer\""),
        "{out}"
    );
    assert!(err.contains("keys"), "{err}");
    let (ok, out, _) = keys(&sys, d, &["list", "--query", "READER", "--json"]);
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["keys"][0]["prefix"], prefix);

    // get, update, disable, enable by prefix; the node follows each.
    let (ok, out, _) = keys(&sys, d, &["get", prefix]);
    assert!(ok && out.contains("cli reader"), "{out}");
    let (ok, out, err) = keys(
        &sys,
        d,
        &["update", prefix, "--read-only", "false", "--name", "cli rw"],
    );
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("read-write") && out.contains("cli rw"),
        "{out}"
    );
    assert!(node_says(key.clone(), "POST", StatusCode::OK).await);
    let (ok, _, err) = keys(&sys, d, &["disable", prefix]);
    assert!(ok, "{err}");
    assert!(node_says(key.clone(), "GET", StatusCode::UNAUTHORIZED).await);
    let (ok, _, err) = keys(&sys, d, &["enable", prefix]);
    assert!(ok, "{err}");
    assert!(node_says(key.clone(), "GET", StatusCode::OK).await);

    // remove asks first; without a terminal it needs --yes.
    let (ok, _, err) = keys(&sys, d, &["remove", prefix]);
    assert!(!ok);
    assert!(err.contains("--yes"), "{err}");
    assert!(node_says(key.clone(), "GET", StatusCode::OK).await);
    let (ok, out, err) = keys(&sys, d, &["remove", prefix, "--yes"]);
    assert!(ok, "{err}");
    assert!(out.contains("Removed"), "{out}");
    assert!(node_says(key.clone(), "GET", StatusCode::UNAUTHORIZED).await);
    let id = listed["keys"][0]["id"].as_str().unwrap();
    let (ok, _, err) = keys(&sys, d, &["get", id]);
    assert!(!ok);
    assert!(err.contains("404 not_found"), "{err}");

    // Errors are clear and exit non-zero.
    let (ok, _, err) = keys(&sys, d, &["update", "zzzzzzzz", "--enabled", "false"]);
    assert!(!ok && err.contains("no key has the prefix"), "{err}");
    let (ok, _, err) = keys(&sys, d, &["update", id]);
    assert!(!ok && err.contains("nothing to change"), "{err}");
    // A whole key where an id or prefix belongs: refused, never repeated.
    let (ok, out, err) = keys(&sys, d, &["get", key.as_str()]);
    assert!(!ok && err.contains("whole API key"), "{err}");
    assert!(!out.contains(key.as_str()) && !err.contains(key.as_str()));
    let (ok, _, err) = keys(&sys, d, &["create", "   "]);
    assert!(!ok && err.contains("invalid_name"), "{err}");
    let (ok, _, err) = keys_as(
        &sys,
        d,
        &["list"],
        &[("KEYLEDGER_ADMIN_KEY", "not-an-admin-key-at-all")],
    );
    assert!(!ok && err.contains("401 unauthorized"), "{err}");
    let (ok, _, err) = keys_as(&sys, d, &["list"], &[]);
    assert!(!ok && err.contains("KEYLEDGER_ADMIN_KEY"), "{err}");
    // The bootstrap token can make an admin key only.
    let (ok, _, err) = keys_as(
        &sys,
        d,
        &["create", "from token"],
        &[("KEYLEDGER_ADMIN_TOKEN", sys.bootstrap.as_str())],
    );
    assert!(!ok && err.contains("bootstrap_limited"), "{err}");
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let mut p = Process::spawn(
        "keys-unreachable",
        d,
        &["keys", "--admin-url", &unreachable, "list"],
        &[("KEYLEDGER_ADMIN_KEY", sys.token.as_str())],
    )
    .unwrap();
    assert!(!p.wait(Duration::from_secs(20)).unwrap().success());
    assert!(
        p.output().contains("cannot reach the admin API"),
        "{}",
        p.output()
    );
}
