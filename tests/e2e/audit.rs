//! The audit trail: `keyledger audit` online and offline, tampering, point in
//! time, leaked keys, admin identities and the history endpoints.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use keyledger_tests::{System, keyledger_bin};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Runs `keyledger audit <args>` to the end; returns (exit code, stdout, stderr).
fn audit(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(keyledger_bin().unwrap())
        .arg("audit")
        .args(args)
        .env_remove("KEYLEDGER_PUBLIC_KEY")
        .env_remove("KEYLEDGER_PUBLIC_KEY_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_public_key(sys: &System, dir: &Path) -> String {
    let path = dir.join("signing.key.pub");
    std::fs::write(&path, format!("{}\n", sys.signing.public_key())).unwrap();
    path.to_str().unwrap().to_owned()
}

fn head_of(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("head "))
        .unwrap_or_else(|| panic!("no head in {stdout}"))
        .to_owned()
}

/// Replaces the stream with `messages` (subject, payload), in order: the test
/// helper that "edits the stream directly", as someone with NATS access could.
async fn rewrite_stream(sys: &System, messages: &[(String, Vec<u8>)]) {
    let client = async_nats::connect(sys.nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let config = js
        .get_stream(&sys.stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    js.delete_stream(&sys.stream).await.unwrap();
    js.create_stream(config).await.unwrap();
    for (subject, payload) in messages {
        js.publish(subject.clone(), payload.clone().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

/// The key with id `id` in `replay --format json` output.
fn key_in(replayed: &str, id: &str) -> Value {
    let state: Value = serde_json::from_str(replayed).unwrap();
    state
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no key {id} in {replayed}"))
}

fn stored(messages: Vec<(u64, String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    messages.into_iter().map(|(_, s, p)| (s, p)).collect()
}

/// A scripted life: create (read-only), rename + read-write, disable, enable,
/// remove. Returns the key's raw material and the sequence of each step.
async fn scripted(sys: &System) -> (keyledger_tests::CreatedKey, Vec<u64>) {
    let key = sys.create_key("ci deploy", true).await;
    let mut seqs = vec![key.seq];
    for body in [
        json!({ "name": "ci release", "read_only": false }),
        json!({ "enabled": false }),
        json!({ "enabled": true }),
    ] {
        let (status, answer) = sys.update_key(&key.id, body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        seqs.push(answer["seq"].as_u64().unwrap());
    }
    let (status, answer) = sys.remove_key(&key.id).await;
    assert_eq!(status, StatusCode::OK);
    seqs.push(answer["seq"].as_u64().unwrap());
    (key, seqs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_holds_and_exports_replay_the_same_offline() {
    let sys = System::with_nodes(0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let public = write_public_key(&sys, dir.path());
    let (key, seqs) = scripted(&sys).await;
    let url = sys.nats.url();
    let online = ["--nats-url", url.as_str(), "--public-key", public.as_str()];

    let (code, out, err) = audit(&[&["verify"], &online[..]].concat(), None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("OK: the chain holds"), "{out}");
    let head = head_of(&out);
    assert!(head.starts_with(&format!("{}:", seqs[4])), "{head}");

    let export = dir.path().join("history.jsonl");
    let export_arg = export.to_str().unwrap();
    let (code, _, err) = audit(
        &[&["export", "--out", export_arg], &online[..]].concat(),
        None,
    );
    assert_eq!(code, 0, "{err}");
    let lines = std::fs::read_to_string(&export).unwrap();
    assert_eq!(
        lines.lines().count() as u64,
        seqs[4],
        "one line per message"
    );
    assert!(!lines.contains(&key.key), "an export never holds a raw key");

    let offline = ["--from", export_arg, "--public-key", public.as_str()];
    let (code, out, err) = audit(&[&["verify"], &offline[..]].concat(), None);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(head_of(&out), head, "the same head offline");

    for at in ["2", "4", &seqs[4].to_string()] {
        let (c1, on, e1) = audit(
            &[&["replay", "--at", at, "--format", "json"], &online[..]].concat(),
            None,
        );
        let (c2, off, e2) = audit(
            &[&["replay", "--at", at, "--format", "json"], &offline[..]].concat(),
            None,
        );
        assert_eq!((c1, c2), (0, 0), "{e1}{e2}");
        assert_eq!(on, off, "the same state online and offline at {at}");
        // And replaying twice gives byte-identical state.
        let (_, again, _) = audit(
            &[&["replay", "--at", at, "--format", "json"], &offline[..]].concat(),
            None,
        );
        assert_eq!(off, again);
    }
    let (_, end, _) = audit(
        &[&["replay", "--format", "json"], &offline[..]].concat(),
        None,
    );
    let ours = key_in(&end, &key.id);
    assert_eq!(ours["removed"], true);
    assert_eq!(ours["name"], "ci release");

    // Without --public-key, the first signer is trusted, and it says so.
    let (code, _, err) = audit(&["verify", "--from", export_arg], None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("trusting the first event's signer"), "{err}");
    // With the wrong key, nothing verifies.
    let other = dir.path().join("other.pub");
    std::fs::write(
        &other,
        keyledger_events::SigningKey::generate()
            .unwrap()
            .public_key()
            .to_hex(),
    )
    .unwrap();
    let (code, _, err) = audit(
        &[
            "verify",
            "--from",
            export_arg,
            "--public-key",
            other.to_str().unwrap(),
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("first bad sequence 1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_answers_and_leaked_key_lookup() {
    let sys = System::with_nodes(0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let public = write_public_key(&sys, dir.path());
    let (key, seqs) = scripted(&sys).await;
    let export = dir.path().join("history.jsonl");
    let export_arg = export.to_str().unwrap();
    let url = sys.nats.url();
    let (code, _, err) = audit(&["export", "--out", export_arg, "--nats-url", &url], None);
    assert_eq!(code, 0, "{err}");
    let offline = ["--from", export_arg, "--public-key", public.as_str()];

    // (after step, GET allowed, POST allowed)
    let script = [
        (seqs[0] - 1, false, false), // not created yet
        (seqs[0], true, false),      // read-only
        (seqs[1], true, true),       // read-write
        (seqs[2], false, false),     // disabled
        (seqs[3], true, true),       // enabled again
        (seqs[4], false, false),     // removed
    ];
    for (at, get, post) in script {
        for (method, want) in [("GET", get), ("POST", post)] {
            let (code, out, err) = audit(
                &[
                    &[
                        "was-valid",
                        key.prefix.as_str(),
                        "--at",
                        &at.to_string(),
                        "--method",
                        method,
                    ],
                    &offline[..],
                ]
                .concat(),
                None,
            );
            assert_eq!(
                code,
                if want { 0 } else { 3 },
                "at {at} {method}: {out}{err}"
            );
            assert!(out.starts_with(if want { "yes" } else { "no" }), "{out}");
        }
    }
    // By time: the moment the disable was stored.
    let lines: Vec<Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let disabled_at = lines[usize::try_from(seqs[2] - 1).unwrap()]["time"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, out, _) = audit(
        &[
            &["was-valid", key.id.as_str(), "--at", &disabled_at],
            &offline[..],
        ]
        .concat(),
        None,
    );
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("disabled"), "{out}");

    // Replay at the rename shows the new name and scope.
    let (_, out, _) = audit(
        &[
            &["replay", "--at", &seqs[1].to_string(), "--format", "json"],
            &offline[..],
        ]
        .concat(),
        None,
    );
    let k = key_in(&out, &key.id);
    assert_eq!(k["name"], "ci release");
    assert_eq!(k["read_only"], false);
    assert_eq!(k["enabled"], true);

    // The key leaked: find it from the raw key, online and offline.
    for source in [
        &offline[..],
        &["--nats-url", url.as_str(), "--public-key", public.as_str()][..],
    ] {
        let (code, out, err) = audit(
            &[&["lookup", "--format", "json"], source].concat(),
            Some(&format!("{}\n", key.key)),
        );
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            !out.contains(&key.key) && !err.contains(&key.key),
            "never echoed"
        );
        let found: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(found["key"]["id"], key.id.as_str());
        let kinds: Vec<&str> = found["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "Created",
                "Renamed",
                "ScopeChanged",
                "Disabled",
                "Enabled",
                "Removed"
            ]
        );
    }
    // A key this ledger never issued.
    let stranger = keyledger_events::ApiKey::generate().unwrap();
    let (code, out, _) = audit(
        &[&["lookup"], &offline[..]].concat(),
        Some(stranger.expose_secret()),
    );
    assert_eq!(code, 3);
    assert!(out.contains("never issued"), "{out}");
    // Text history names who, when and from where.
    let (code, out, _) = audit(
        &[&["history", key.id.as_str()], &offline[..]].concat(),
        None,
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("Disabled") && out.contains("from 127.0.0.1"),
        "{out}"
    );
    // Its times are exact: copied into --at, each names its own event.
    let time_of = |kind: &str| {
        out.lines()
            .find(|l| l.split_whitespace().nth(2) == Some(kind))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no {kind} line in {out}"))
            .to_owned()
    };
    for (kind, want) in [("Created", 0), ("Disabled", 3), ("Enabled", 0)] {
        let at = time_of(kind);
        let (code, answer, err) = audit(
            &[
                &["was-valid", key.id.as_str(), "--at", at.as_str()],
                &offline[..],
            ]
            .concat(),
            None,
        );
        assert_eq!(
            code, want,
            "was-valid at the {kind} time {at}: {answer}{err}"
        );
    }
    // A key given as an argument (where shell history keeps it) is refused
    // and not repeated.
    let (code, out, err) = audit(
        &[&["lookup", key.key.as_str()], &offline[..]].concat(),
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("stdin"), "{err}");
    assert!(
        !out.contains(&key.key) && !err.contains(&key.key),
        "never echoed"
    );
    // So is one given where an id or prefix belongs.
    let (code, out, err) = audit(
        &[&["history", key.key.as_str()], &offline[..]].concat(),
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("whole API key"), "{err}");
    assert!(
        !out.contains(&key.key) && !err.contains(&key.key),
        "never echoed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_the_stream_is_caught_and_named() {
    let sys = System::with_nodes(0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let public = write_public_key(&sys, dir.path());
    let (_, seqs) = scripted(&sys).await;
    let original = stored(sys.stream_messages().await);
    let url = sys.nats.url();
    let online = ["--nats-url", url.as_str(), "--public-key", public.as_str()];
    let (code, out, _) = audit(&[&["verify"], &online[..]].concat(), None);
    assert_eq!(code, 0);
    let head = head_of(&out);

    let verify_fails_at = |expect_head: bool| {
        let mut args = vec!["verify"];
        args.extend_from_slice(&online);
        if expect_head {
            args.extend_from_slice(&["--expect-head", head.as_str()]);
        }
        let (code, out, err) = audit(&args, None);
        assert_ne!(code, 0, "{out}{err}");
        let first = err
            .lines()
            .find_map(|l| l.strip_prefix("verification FAILED: first bad sequence "))
            .unwrap_or_else(|| panic!("{out}{err}"))
            .to_owned();
        (first, out)
    };

    // Stream sequence n is original[n - 1].
    let disable = usize::try_from(seqs[2]).unwrap();
    let named = |first: &str, why: &str| {
        assert!(
            first.starts_with(&format!("{disable}: ")) && first.contains(why),
            "expected sequence {disable} ({why}): {first}"
        );
    };
    // 1. One field of a stored event changed: the disable says enabled.
    let mut edited = original.clone();
    let text = String::from_utf8(edited[disable - 1].1.clone()).unwrap();
    assert!(text.contains(r#""type":"Disabled""#));
    edited[disable - 1].1 = text
        .replace(r#""type":"Disabled""#, r#""type":"Enabled""#)
        .into_bytes();
    rewrite_stream(&sys, &edited).await;
    named(&verify_fails_at(false).0, "modified");

    // 2. One message deleted (the disable): the next one no longer links.
    let mut edited = original.clone();
    edited.remove(disable - 1);
    rewrite_stream(&sys, &edited).await;
    named(&verify_fails_at(false).0, "does not follow");

    // 3. A forged Enabled inserted before the disable: linked to the real
    //    chain and naming the real signer, but signed by someone else.
    let impostor = keyledger_events::SigningKey::generate().unwrap();
    let before: Value = serde_json::from_slice(&original[disable - 2].1).unwrap();
    let last = before["events"].as_array().unwrap().last().unwrap();
    let tip = keyledger_events::EventHash::from_hex(last["hash"].as_str().unwrap()).unwrap();
    let mut event = last.clone();
    for field in ["prev", "hash", "sig", "signer"] {
        event.as_object_mut().unwrap().remove(field);
    }
    event["type"] = json!("Enabled");
    event["data"] = json!({});
    // Linked and hashed as admin would, naming the real signer; the signature
    // is the impostor's, who does not hold the signing key.
    let honest = keyledger_events::Chain::resume(0, tip, sys.signing.public_key());
    let mut forged: Value = serde_json::from_slice(
        &honest
            .sign_values(vec![event.clone()], &sys.signing, None)
            .unwrap()
            .bytes,
    )
    .unwrap();
    let fake = keyledger_events::Chain::resume(0, tip, impostor.public_key());
    let by_impostor: Value = serde_json::from_slice(
        &fake
            .sign_values(vec![event], &impostor, None)
            .unwrap()
            .bytes,
    )
    .unwrap();
    forged["events"][0]["sig"] = by_impostor["events"][0]["sig"].clone();
    let mut edited = original.clone();
    edited.insert(
        disable - 1,
        (
            original[disable - 2].0.clone(),
            serde_json::to_vec(&forged).unwrap(),
        ),
    );
    rewrite_stream(&sys, &edited).await;
    let (first, out) = verify_fails_at(false);
    named(&first, "signature");
    assert!(
        !out.contains(&format!("PROBLEM at sequence {}", disable + 1)),
        "the real chain goes on after it: {out}"
    );

    // 4. Truncated to three messages, then appended to by a (restarted) admin:
    //    the chain holds, but the recorded head does not.
    rewrite_stream(&sys, &original[..3]).await;
    let admin = sys.start_admin(&sys.stream).await.unwrap();
    let append = async |name: &str| {
        let r = sys
            .http
            .post(format!("{}/v1/keys", admin.url))
            .bearer_auth(&sys.token)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    };
    append("after the truncation").await;
    let (code, out, _) = audit(&[&["verify"], &online[..]].concat(), None);
    assert_eq!(
        code, 0,
        "a truncated, re-extended chain holds by itself: {out}"
    );
    // Shorter than the recorded head: truncated.
    let (first, _) = verify_fails_at(true);
    assert!(first.contains("truncated"), "{first}");
    // Longer again: the recorded head's sequence now holds another event.
    let recorded = seqs[4];
    while sys.stream_messages().await.len() < usize::try_from(recorded).unwrap() {
        append("more after the truncation").await;
    }
    let (first, _) = verify_fails_at(true);
    assert!(
        first.starts_with(&format!("{recorded}: ")) && first.contains("rewritten"),
        "{first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_keys_are_the_actors_and_revoking_one_cuts_it_off() {
    let sys = System::with_nodes(1).await.unwrap();
    // The bootstrap token cannot manage API keys, nor make more admin keys now.
    let r = sys
        .http
        .post(format!("{}/v1/keys", sys.admin.url))
        .bearer_auth(&sys.bootstrap)
        .json(&json!({ "name": "api key" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = sys
        .http
        .post(format!("{}/v1/keys", sys.admin.url))
        .bearer_auth(&sys.bootstrap)
        .json(&json!({ "name": "second admin", "admin": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = sys
        .http
        .get(format!("{}/v1/keys", sys.admin.url))
        .bearer_auth(&sys.bootstrap)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The first admin makes a second admin key; the second makes an API key.
    let (status, second) = sys
        .admin_call(
            Method::POST,
            "/v1/keys",
            Some(json!({ "name": "ops", "admin": true })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second_key = second["key"].as_str().unwrap().to_owned();
    // Admin keys are never API keys.
    sys.wait_applied(second["seq"].as_u64().unwrap()).await;
    assert_eq!(
        sys.verify(0, &second_key, "GET").await,
        StatusCode::UNAUTHORIZED
    );
    let r = sys
        .http
        .post(format!("{}/v1/keys", sys.admin.url))
        .bearer_auth(&second_key)
        .header("user-agent", "ops-script/1.0")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .json(&json!({ "name": "made by ops" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let made: Value = r.json().await.unwrap();

    // Its history names the second admin, from where, and the trace.
    let (status, history) = sys
        .admin_call(
            Method::GET,
            &format!("/v1/keys/{}/history", made["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let created = &history["history"][0];
    assert_eq!(created["type"], "Created");
    assert_eq!(created["actor"]["type"], "admin_key");
    assert_eq!(created["actor"]["key_id"], second["id"]);
    assert_eq!(created["actor"]["prefix"], second["prefix"]);
    assert_eq!(created["origin"]["ip"], "127.0.0.1");
    assert_eq!(created["origin"]["user_agent"], "ops-script/1.0");
    assert_eq!(
        created["origin"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );

    // Revoke the second admin key: it is cut off at once.
    let (status, _) = sys
        .admin_call(
            Method::PATCH,
            &format!("/v1/keys/{}", second["id"].as_str().unwrap()),
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = sys
        .http
        .get(format!("{}/v1/keys", sys.admin.url))
        .bearer_auth(&second_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Removed, its history stays readable by id.
    let (status, _) = sys
        .admin_call(
            Method::DELETE,
            &format!("/v1/keys/{}", second["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, history) = sys
        .admin_call(
            Method::GET,
            &format!("/v1/keys/{}/history", second["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(history["removed"], true);
    let kinds: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Created", "Disabled", "Removed"]);
    // All three by the first admin key (the one `admin_call` uses).
    let (_, listing) = sys
        .admin_call(Method::GET, "/v1/keys?q=test%20admin", None)
        .await;
    let first_admin = listing["keys"][0]["id"].clone();
    assert!(first_admin.is_string(), "{listing}");
    for e in history["history"].as_array().unwrap() {
        assert_eq!(e["actor"]["key_id"], first_admin, "{e}");
    }

    // The events endpoint pages through the stream; every event names an actor.
    let mut since = 1;
    let mut seen = 0u64;
    loop {
        let (status, page) = sys
            .admin_call(
                Method::GET,
                &format!("/v1/events?since={since}&limit=2"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for e in page["events"].as_array().unwrap() {
            seen += 1;
            assert_eq!(e["seq"], seen, "no message skipped or repeated");
            for ev in e["payload"]["events"].as_array().unwrap() {
                assert!(ev["actor"]["type"].is_string(), "{ev}");
            }
        }
        since = page["next_since"].as_u64().unwrap();
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(seen, sys.stream_messages().await.len() as u64);
    let (status, body) = sys
        .admin_call(Method::GET, "/v1/events?limit=0", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The last read-write admin key makes itself read-only: nobody could
    // manage keys any more, so the bootstrap token may make an admin key again.
    let first_id = first_admin.as_str().unwrap();
    let (status, body) = sys.update_key(first_id, json!({ "read_only": true })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = sys
        .update_key(first_id, json!({ "read_only": false }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let rescue = keyledger_tests::bootstrap_admin_key(&sys.http, &sys.admin.url, &sys.bootstrap)
        .await
        .unwrap();
    let r = sys
        .http
        .post(format!("{}/v1/keys", sys.admin.url))
        .bearer_auth(&rescue)
        .json(&json!({ "name": "after the rescue" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // With a read-write admin key again, the token is limited again.
    let r = sys
        .http
        .post(format!("{}/v1/keys", sys.admin.url))
        .bearer_auth(&sys.bootstrap)
        .json(&json!({ "name": "one too many", "admin": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_key_rotates_through_an_announcement_in_the_chain() {
    let sys = System::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let public = write_public_key(&sys, dir.path());
    let before = sys.create_key("before", false).await;
    let new = keyledger_events::SigningKey::generate().unwrap();
    let rotating = keyledger_tests::RunningAdmin::start_config(
        &sys.nats.url(),
        &sys.stream,
        keyledger_admin::AdminConfig {
            token: keyledger_admin::AdminToken::new(&sys.bootstrap).unwrap(),
            stream: keyledger_eventlog::StreamOptions::default(),
            feed: keyledger_eventlog::FeedOptions::new(sys.signing.public_key()),
            signing: sys.signing.clone(),
            rotate_to: Some(new.clone()),
        },
    )
    .await
    .unwrap();
    let mut seqs = Vec::new();
    for name in ["announces", "after"] {
        let r = sys
            .http
            .post(format!("{}/v1/keys", rotating.url))
            .bearer_auth(&sys.token)
            .json(&json!({ "name": name, "read_only": false }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        seqs.push((
            body["seq"].as_u64().unwrap(),
            body["key"].as_str().unwrap().to_owned(),
        ));
    }
    let messages = sys.stream_messages().await;
    let announcing: Value =
        serde_json::from_slice(&messages[usize::try_from(seqs[0].0).unwrap() - 1].2).unwrap();
    assert_eq!(
        announcing["events"][0]["signer"],
        sys.signing.public_key().to_hex()
    );
    assert_eq!(
        announcing["events"][0]["next_signer"],
        new.public_key().to_hex()
    );
    let after: Value =
        serde_json::from_slice(&messages[usize::try_from(seqs[1].0).unwrap() - 1].2).unwrap();
    assert_eq!(after["events"][0]["signer"], new.public_key().to_hex());

    // Nodes that only know the first key follow the rotation.
    sys.wait_applied(seqs[1].0).await;
    for (_, key) in &seqs {
        assert_eq!(
            sys.verify_all(key, "POST").await,
            [StatusCode::OK, StatusCode::OK]
        );
    }
    assert_eq!(
        sys.verify_all(&before.key, "POST").await,
        [StatusCode::OK, StatusCode::OK]
    );
    // So does the auditor, with the first public key.
    let url = sys.nats.url();
    let (code, out, err) = audit(
        &["verify", "--nats-url", &url, "--public-key", &public],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    // An admin that holds only the old key can no longer write.
    let (status, body) = sys
        .admin_call(
            Method::POST,
            "/v1/keys",
            Some(json!({ "name": "stale signer" })),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signing key"),
        "{body}"
    );
}
