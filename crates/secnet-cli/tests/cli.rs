//! Runs the real `secnet` binary against a tiny fake daemon on a Unix socket.
//!
//! The fake answers canned `LocalResult`s through `secnet_api::wire`; it exists only to test
//! the CLI's side of the protocol (the real daemon is tested in its own crate).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use secnet_api::wire;
use secnet_api::{ApiError, ErrorKind, LocalRequest, LocalResponse, LocalResult, NetworkInfo};

const NET_ID: &str = "9f2c4a1b7e3d5c60a1b2c3d4e5f60718";

fn network(id: &str, name: &str, encrypted: bool, mtu: u32) -> NetworkInfo {
    NetworkInfo {
        id: id.into(),
        name: name.into(),
        driver: "overlay".into(),
        scope: "swarm".into(),
        subnet: "10.0.1.0/24".parse().unwrap(),
        gateway: "10.0.1.1".parse().unwrap(),
        vni: 4097,
        encrypted,
        mtu,
        attachable: false,
        labels: BTreeMap::from([("team".into(), "db".into())]),
        created: "2024-05-01T10:00:00Z".into(),
    }
}

/// The canned answers.
fn answer(req: &LocalRequest) -> LocalResult {
    match req {
        LocalRequest::NetworkLs => Ok(LocalResponse::Networks(vec![
            network(NET_ID, "backend", true, 1390),
            network("0011223344556677", "frontend", false, 1450),
        ])),
        LocalRequest::NetworkCreate(spec) => Ok(LocalResponse::Network(network(
            NET_ID,
            &spec.name,
            spec.encrypted,
            spec.mtu.unwrap_or(1450),
        ))),
        LocalRequest::NodeLs => Err(ApiError::unavailable(
            "this node is not a manager and cannot reach one: no leader elected",
        )),
        LocalRequest::NetworkRm { networks } if networks.iter().any(|n| n == "ghost") => Err(
            ApiError::new(ErrorKind::NotFound, "network \"ghost\" not found"),
        ),
        LocalRequest::NetworkRm { networks } => {
            Ok(LocalResponse::NetworksRemoved(networks.clone()))
        }
        LocalRequest::Leave { .. } => Err(ApiError::internal("disk on fire")),
        // A wrong kind of answer, to check the CLI refuses it.
        _ => Ok(LocalResponse::Left),
    }
}

struct FakeDaemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<LocalRequest>>>,
}

impl FakeDaemon {
    fn start() -> FakeDaemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("secnet.sock");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = socket.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::bind(&path).unwrap();
                ready_tx.send(()).unwrap();
                loop {
                    let Ok((mut conn, _)) = listener.accept().await else {
                        break;
                    };
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        let Ok(Some(req)) = wire::read_msg::<_, LocalRequest>(&mut conn).await
                        else {
                            return;
                        };
                        let result = answer(&req);
                        seen.lock().unwrap().push(req);
                        let _ = wire::write_msg(&mut conn, &result).await;
                    });
                }
            });
        });
        ready_rx.recv().unwrap();
        FakeDaemon {
            _dir: dir,
            socket,
            requests,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        secnet(&self.socket, args)
    }

    fn last_request(&self) -> LocalRequest {
        self.requests.lock().unwrap().last().cloned().unwrap()
    }
}

fn secnet(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secnet"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("SECNET_SOCKET")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn network_ls_json_parses_back() {
    let d = FakeDaemon::start();
    let out = d.run(&["network", "ls", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let nets: Vec<NetworkInfo> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(nets.len(), 2);
    assert_eq!(nets[0].id, NET_ID);
    assert_eq!(nets[0], network(NET_ID, "backend", true, 1390));
    assert!(matches!(d.last_request(), LocalRequest::NetworkLs));
}

#[test]
fn network_ls_table() {
    let d = FakeDaemon::start();
    let out = d.run(&["network", "ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("NETWORK ID    NAME      DRIVER"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("9f2c4a1b7e3d  backend   overlay"),
        "{text}"
    );
    let out = d.run(&["network", "ls", "-q"]);
    assert_eq!(stdout(&out), format!("{NET_ID}\n0011223344556677\n"));
}

#[test]
fn network_create_prints_the_id() {
    let d = FakeDaemon::start();
    let out = d.run(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--opt",
        "encrypted",
        "-o",
        "mtu=1400",
        "--label",
        "team=db",
        "backend",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{NET_ID}\n"));
    let LocalRequest::NetworkCreate(spec) = d.last_request() else {
        panic!("expected NetworkCreate")
    };
    assert_eq!(spec.name, "backend");
    assert!(spec.encrypted);
    assert_eq!(spec.mtu, Some(1400));
    assert_eq!(spec.labels.get("team").map(String::as_str), Some("db"));
}

#[test]
fn network_rm_prints_names_and_not_found_exits_1() {
    let d = FakeDaemon::start();
    let out = d.run(&["network", "rm", "a", "b"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "a\nb\n");
    let out = d.run(&["network", "rm", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error: network \"ghost\" not found\n");
}

#[test]
fn unavailable_exits_3_with_the_message() {
    let d = FakeDaemon::start();
    let out = d.run(&["node", "ls"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stdout(&out).is_empty());
    assert_eq!(
        stderr(&out),
        "Error: this node is not a manager and cannot reach one: no leader elected\n"
    );
}

#[test]
fn internal_and_unexpected_answers_exit_4() {
    let d = FakeDaemon::start();
    let out = d.run(&["leave"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(stderr(&out), "Error: disk on fire\n");
    // The fake answers `Left` to `status`, which is not a status.
    let out = d.run(&["status"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("unexpected answer"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_socket_exits_3_with_cannot_connect() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nothing-here.sock");
    let out = secnet(&socket, &["network", "ls"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "Error: cannot connect to the secnet daemon at {}: ",
            socket.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("Is secnetd running? (set --socket or SECNET_SOCKET)"),
        "{err}"
    );
}

#[test]
fn socket_from_environment() {
    let d = FakeDaemon::start();
    let out = Command::new(env!("CARGO_BIN_EXE_secnet"))
        .args(["network", "ls", "-q"])
        .env("SECNET_SOCKET", &d.socket)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(NET_ID));
}

#[test]
fn usage_errors_exit_2_without_contacting_the_daemon() {
    let d = FakeDaemon::start();
    let out = d.run(&["network", "create", "--opt", "foo", "n"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown network option \"foo\""),
        "{}",
        stderr(&out)
    );
    let out = d.run(&["init", "--data-path-port", "80"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(d.requests.lock().unwrap().is_empty());
}

#[test]
fn help_exits_0() {
    let out = Command::new(env!("CARGO_BIN_EXE_secnet"))
        .args(["network", "create", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("mtu=N"));
}
