//! The `keyledger` binary: help, start-up errors, graceful shutdown, `dev`.

use std::time::Duration;

use keyledger_tests::{NatsServer, Process, eventually, free_port, nats_server_bin, verify_at};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[test]
fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    for (cmd, must) in [
        (
            vec!["--help"],
            vec!["admin", "node", "dev", "keygen", "audit", "keys"],
        ),
        (
            vec!["keys", "--help"],
            vec![
                "create",
                "list",
                "get",
                "update",
                "disable",
                "enable",
                "remove",
                "KEYLEDGER_ADMIN_URL",
            ],
        ),
        (
            vec!["keys", "create", "--help"],
            vec!["--read-write", "--admin", "--json"],
        ),
        (vec!["keys", "remove", "--help"], vec!["--yes"]),
        (
            vec!["node", "--help"],
            vec!["--max-staleness", "KEYLEDGER_MAX_STALENESS"],
        ),
        (vec!["dev", "--help"], vec!["--acknowledge-untrusted"]),
        (
            vec!["admin", "--help"],
            vec![
                "--nats-url",
                "--listen",
                "--stream",
                "--admin-token-file",
                "--signing-key-file",
                "--rotate-to-signing-key-file",
                "KEYLEDGER_NATS_URL",
                "KEYLEDGER_ADMIN_TOKEN",
            ],
        ),
        (
            vec!["node", "--help"],
            vec![
                "--nats-url",
                "--listen",
                "--stream",
                "--public-key",
                "KEYLEDGER_LISTEN",
            ],
        ),
        (vec!["keygen", "--help"], vec!["--out"]),
        (vec!["dev", "--help"], vec!["--data-dir", "--nats-port"]),
    ] {
        let mut p = Process::spawn("help", dir.path(), &cmd, &[]).unwrap();
        let status = p.wait(Duration::from_secs(10)).unwrap();
        assert!(status.success(), "{cmd:?}");
        let out = p.output();
        for word in must {
            assert!(out.contains(word), "{cmd:?} help lacks {word}:\n{out}");
        }
    }
}

#[test]
fn unreachable_nats_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    for (name, args) in [
        ("node", vec!["node", "--nats-url", url.as_str()]),
        ("admin", vec!["admin", "--nats-url", url.as_str()]),
    ] {
        let mut p = Process::spawn(
            name,
            dir.path(),
            &args,
            &[
                ("KEYLEDGER_ADMIN_TOKEN", "a-long-enough-admin-token"),
                ("KEYLEDGER_SIGNING_KEY", &"11".repeat(32)),
                (
                    "KEYLEDGER_PUBLIC_KEY",
                    "d04ab232742bb4ab3a1368bd4615e4e6d0224ab71a016baf8520a332c9778737",
                ),
            ],
        )
        .unwrap();
        let status = p.wait(Duration::from_secs(20)).unwrap();
        assert!(!status.success());
        assert!(
            p.output().contains(&format!("cannot reach NATS at {url}")),
            "{}",
            p.output()
        );
    }
    let mut p = Process::spawn("notoken", dir.path(), &["admin", "--nats-url", &url], &[]).unwrap();
    assert!(!p.wait(Duration::from_secs(10)).unwrap().success());
    assert!(
        p.output().contains("KEYLEDGER_ADMIN_TOKEN"),
        "{}",
        p.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_node_processes_shut_down_gracefully_on_sigterm() {
    let nats = NatsServer::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (admin_port, node_port) = (free_port(), free_port());
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token-0123456789abcdef\n").unwrap();
    let key_file = dir.path().join("signing.key");
    let mut keygen = Process::spawn(
        "keygen",
        dir.path(),
        &["keygen", "--out", key_file.to_str().unwrap()],
        &[],
    )
    .unwrap();
    assert!(keygen.wait(Duration::from_secs(10)).unwrap().success());
    let public_file = dir.path().join("signing.key.pub");
    assert!(public_file.is_file(), "{}", keygen.output());
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let node_listen = format!("127.0.0.1:{node_port}");
    let mut admin = Process::spawn(
        "admin",
        dir.path(),
        &[
            "admin",
            "--admin-token-file",
            token_file.to_str().unwrap(),
            "--signing-key-file",
            key_file.to_str().unwrap(),
            "--listen",
            &admin_listen,
        ],
        &[("KEYLEDGER_NATS_URL", nats.url().as_str())],
    )
    .unwrap();
    let mut node = Process::spawn(
        "node",
        dir.path(),
        &[
            "node",
            "--nats-url",
            &nats.url(),
            "--public-key",
            public_file.to_str().unwrap(),
        ],
        &[("KEYLEDGER_LISTEN", node_listen.as_str())],
    )
    .unwrap();
    let http = reqwest::Client::new();
    for url in [
        format!("http://{admin_listen}/readyz"),
        format!("http://{node_listen}/readyz"),
    ] {
        let up = eventually(Duration::from_secs(15), || async {
            http.get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK)
        })
        .await;
        assert!(up, "{url}: {}{}", admin.output(), node.output());
    }
    let admin_key = keyledger_tests::bootstrap_admin_key(
        &http,
        &format!("http://{admin_listen}"),
        "file-token-0123456789abcdef",
    )
    .await
    .unwrap();
    let r = http
        .post(format!("http://{admin_listen}/v1/keys"))
        .bearer_auth(&admin_key)
        .json(&json!({ "name": "via process" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let node_url = format!("http://{node_listen}");
    assert!(
        eventually(Duration::from_secs(5), || async {
            verify_at(&http, &node_url, &key, "GET").await == StatusCode::OK
        })
        .await
    );

    assert!(admin.terminate().unwrap().success(), "{}", admin.output());
    assert!(node.terminate().unwrap().success(), "{}", node.output());
    assert!(admin.output().contains("shutting down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_everything_and_keeps_its_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap().to_owned();
    let (nats_port, admin_port, n1, n2) = (free_port(), free_port(), free_port(), free_port());
    let bin = nats_server_bin().unwrap();
    let args = [
        "dev".to_owned(),
        "--data-dir".to_owned(),
        data_arg,
        "--nats-port".to_owned(),
        nats_port.to_string(),
        "--admin-listen".to_owned(),
        format!("127.0.0.1:{admin_port}"),
        "--node-listen".to_owned(),
        format!("127.0.0.1:{n1},127.0.0.1:{n2}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let envs = [("NATS_SERVER_BIN", bin.to_str().unwrap())];
    let http = reqwest::Client::new();
    let admin = format!("http://127.0.0.1:{admin_port}");
    let nodes = [
        format!("http://127.0.0.1:{n1}"),
        format!("http://127.0.0.1:{n2}"),
    ];

    let mut dev = Process::spawn("dev1", dir.path(), &args, &envs).unwrap();
    let up = eventually(Duration::from_secs(20), || async {
        dev.output().contains("Press Ctrl-C")
    })
    .await;
    assert!(up, "{}", dev.output());
    let token = std::fs::read_to_string(data.join("admin-token"))
        .unwrap()
        .trim()
        .to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("admin-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the dev admin token is private");
    assert!(dev.output().contains(&token), "dev prints the admin token");
    let admin_key = std::fs::read_to_string(data.join("admin-key"))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        dev.output().contains(&admin_key),
        "dev prints its admin key"
    );
    assert!(
        data.join("signing.key.pub").is_file(),
        "dev writes the public key"
    );
    let r = http
        .post(format!("{admin}/v1/keys"))
        .bearer_auth(&admin_key)
        .json(&json!({ "name": "dev key" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let key = r.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for node in &nodes {
        assert!(
            eventually(Duration::from_secs(5), || async {
                verify_at(&http, node, &key, "GET").await == StatusCode::OK
            })
            .await
        );
    }
    // A second dev on the same data dir (other ports) would run a second
    // nats-server on the same store, and lose one side's acknowledged writes.
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let mut second = Process::spawn(
        "dev-second",
        dir.path(),
        &[
            "dev",
            "--data-dir",
            data.to_str().unwrap(),
            "--nats-port",
            &p1.to_string(),
            "--admin-listen",
            &format!("127.0.0.1:{p2}"),
            "--node-listen",
            &format!("127.0.0.1:{p3}"),
        ],
        &envs,
    )
    .unwrap();
    assert!(!second.wait(Duration::from_secs(10)).unwrap().success());
    assert!(
        second
            .output()
            .contains("is in use by another keyledger dev"),
        "{}",
        second.output()
    );
    assert!(dev.terminate().unwrap().success(), "{}", dev.output());
    let output = dev.output();
    assert!(output.contains("keyledger dev stopped"));
    assert!(
        !output.contains("NATS disconnected"),
        "stopping is not a lost connection: {output}"
    );

    // Same data dir: same token, and the key is still valid on both nodes.
    let mut dev = Process::spawn("dev2", dir.path(), &args, &envs).unwrap();
    let up = eventually(Duration::from_secs(20), || async {
        dev.output().contains("Press Ctrl-C")
    })
    .await;
    assert!(up, "{}", dev.output());
    assert!(dev.output().contains(&token));
    assert!(dev.output().contains(&admin_key));
    for node in &nodes {
        let ok = eventually(Duration::from_secs(10), || async {
            verify_at(&http, node, &key, "GET").await == StatusCode::OK
        })
        .await;
        assert!(ok, "{node} forgot the key after a restart");
    }
    assert!(dev.terminate().unwrap().success());
}

#[test]
fn dev_without_nats_server_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut p = Process::spawn(
        "dev",
        dir.path(),
        &["dev", "--data-dir", data.to_str().unwrap()],
        &[("NATS_SERVER_BIN", "/nonexistent/nats-server")],
    )
    .unwrap();
    assert!(!p.wait(Duration::from_secs(10)).unwrap().success());
    assert!(p.output().contains("NATS_SERVER_BIN"), "{}", p.output());
}

#[test]
fn dev_refuses_ports_that_are_taken_instead_of_joining_another_system() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nats_port = taken.local_addr().unwrap().port().to_string();
    let bin = nats_server_bin().unwrap();
    let (a, n) = (free_port(), free_port());
    let data = dir.path().join("data");
    let mut p = Process::spawn(
        "dev",
        dir.path(),
        &[
            "dev",
            "--data-dir",
            data.to_str().unwrap(),
            "--nats-port",
            &nats_port,
            "--admin-listen",
            &format!("127.0.0.1:{a}"),
            "--node-listen",
            &format!("127.0.0.1:{n}"),
        ],
        &[("NATS_SERVER_BIN", bin.to_str().unwrap())],
    )
    .unwrap();
    assert!(!p.wait(Duration::from_secs(10)).unwrap().success());
    assert!(p.output().contains("is in use"), "{}", p.output());
    assert!(
        !data.join("admin-token").exists(),
        "nothing is written before the checks pass"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_comes_back_after_being_killed_and_stops_on_hangup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (nats_port, admin_port, node_port) = (free_port(), free_port(), free_port());
    let args = [
        "dev".to_owned(),
        "--data-dir".to_owned(),
        data.to_str().unwrap().to_owned(),
        "--nats-port".to_owned(),
        nats_port.to_string(),
        "--admin-listen".to_owned(),
        format!("127.0.0.1:{admin_port}"),
        "--node-listen".to_owned(),
        format!("127.0.0.1:{node_port}"),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let bin = nats_server_bin().unwrap();
    let envs = [("NATS_SERVER_BIN", bin.to_str().unwrap())];
    let up = |p: &Process| p.output().contains("Press Ctrl-C");

    let mut first = Process::spawn("dev-killed", dir.path(), &args, &envs).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async { up(&first) }).await,
        "{}",
        first.output()
    );
    // SIGKILL: dev cannot stop its nats-server, which lives on.
    let status = first.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(!status.success());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", nats_port)).is_ok(),
        "the orphaned nats-server still holds its port"
    );

    // The next dev on the same data dir stops the leftover and starts cleanly.
    let mut second = Process::spawn("dev-again", dir.path(), &args, &envs).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async { up(&second) }).await,
        "{}",
        second.output()
    );
    assert!(
        second
            .output()
            .contains("left running by an earlier keyledger dev")
    );
    // The terminal goes away: dev stops everything, gently.
    let status = second.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    assert!(status.success(), "{}", second.output());
    assert!(second.output().contains("keyledger dev stopped"));
    assert!(
        eventually(Duration::from_secs(5), || async {
            std::net::TcpStream::connect(("127.0.0.1", nats_port)).is_err()
        })
        .await,
        "nats-server stopped with dev"
    );
}
