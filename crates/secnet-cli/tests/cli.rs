//! Runs the real `secnet` binary against a tiny fake daemon on a Unix socket.
//!
//! The fake answers canned `LocalResult`s through `secnet_api::wire`; it exists only to test
//! the CLI's side of the protocol (the real daemon is tested in its own crate).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use secnet_api::wire;
use secnet_api::{
    ApiError, EndpointInfo, ErrorKind, InterfaceInfo, LocalRequest, LocalResponse, LocalResult,
    NetworkInfo,
};

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

/// An endpoint as the fake daemon reports it.
fn endpoint(name: &str, network: &str, netns: Option<&str>) -> EndpointInfo {
    EndpointInfo {
        id: "5e1f0a2b3c4d5e6f".into(),
        name: name.into(),
        network: network.into(),
        node: "3f2a9c0d1e2b4a5c".into(),
        node_hostname: "worker2".into(),
        ip: "10.0.1.2".parse().unwrap(),
        mac: "02:42:0a:00:01:02".into(),
        netns: netns.map(str::to_string),
        interfaces: vec![InterfaceInfo {
            ifname: "eth0".into(),
            network: network.into(),
            network_id: NET_ID.into(),
            ip: "10.0.1.2".parse().unwrap(),
            cidr: "10.0.1.2/24".into(),
            gateway: "10.0.1.1".parse().unwrap(),
            mac: "02:42:0a:00:01:02".into(),
            mtu: 1450,
        }],
        created: "2024-05-01T10:00:00Z".into(),
    }
}

/// Answers endpoint requests with endpoints whose namespace is `netns`; everything else as
/// [`answer`] does. `EndpointCreate` without a name gets `NETWORK-0a1b2c`.
fn endpoint_answers(netns: Option<String>) -> impl Fn(&LocalRequest) -> LocalResult {
    move |req| match req {
        LocalRequest::EndpointCreate { network, .. } if network == "ghost" => Err(ApiError::new(
            ErrorKind::NotFound,
            "network \"ghost\" not found",
        )),
        LocalRequest::EndpointCreate { network, name, .. } => {
            let name = name.clone().unwrap_or_else(|| format!("{network}-0a1b2c"));
            Ok(LocalResponse::Endpoint(endpoint(
                &name,
                network,
                netns.as_deref(),
            )))
        }
        LocalRequest::EndpointInspect { endpoints } => Ok(LocalResponse::Endpoints(
            endpoints
                .iter()
                .map(|n| endpoint(n, "backend", netns.as_deref()))
                .collect(),
        )),
        LocalRequest::EndpointRm { endpoints } => {
            Ok(LocalResponse::EndpointsRemoved(endpoints.clone()))
        }
        other => answer(other),
    }
}

type Answer = Box<dyn Fn(&LocalRequest) -> LocalResult + Send + Sync>;

struct FakeDaemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<LocalRequest>>>,
}

impl FakeDaemon {
    fn start() -> FakeDaemon {
        Self::start_with(answer)
    }

    /// A fake daemon whose answers come from `answer`.
    fn start_with(
        answer: impl Fn(&LocalRequest) -> LocalResult + Send + Sync + 'static,
    ) -> FakeDaemon {
        let answer: Arc<Answer> = Arc::new(Box::new(answer));
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
                    let answer = answer.clone();
                    tokio::spawn(async move {
                        let Ok(Some(req)) = wire::read_msg::<_, LocalRequest>(&mut conn).await
                        else {
                            return;
                        };
                        let result = (*answer)(&req);
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

    /// `secnet run --network backend --name NAME -- sh -c SCRIPT`.
    fn run_sh(&self, name: &str, script: &str) -> Output {
        self.run(&[
            "run",
            "--network",
            "backend",
            "--name",
            name,
            "--",
            "sh",
            "-c",
            script,
        ])
    }

    fn last_request(&self) -> LocalRequest {
        self.requests.lock().unwrap().last().cloned().unwrap()
    }

    /// Fails unless the last request received is `expected`.
    #[track_caller]
    fn assert_last_request(&self, expected: &LocalRequest) {
        assert_eq!(json(&self.last_request()), json(expected));
    }

    /// The requests received so far, as JSON (`LocalRequest` has no `PartialEq`).
    fn requests_json(&self) -> Vec<serde_json::Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect()
    }
}

fn json(req: &LocalRequest) -> serde_json::Value {
    serde_json::to_value(req).unwrap()
}

/// The request that removes endpoint `name`, as `run` sends it once its command is done.
fn endpoint_rm(name: &str) -> LocalRequest {
    LocalRequest::EndpointRm {
        endpoints: vec![name.into()],
    }
}

/// A real network namespace kept in a file of a temporary directory (as `ip netns add`
/// does), for the commands that run `nsenter --net=FILE`. Needs root: `create` returns None
/// (and the test skips) without it.
struct TestNetns {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestNetns {
    fn create() -> Option<TestNetns> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: creating a network namespace needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netns");
        std::fs::File::create(&path).unwrap();
        let out = Command::new("unshare")
            .arg(format!("--net={}", path.display()))
            .arg("true")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "unshare --net={} failed: {}",
            path.display(),
            stderr(&out)
        );
        Some(TestNetns { path, _dir: dir })
    }

    fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// What `readlink /proc/self/ns/net` prints inside the namespace.
    fn id(&self) -> String {
        use std::os::unix::fs::MetadataExt;
        format!("net:[{}]", std::fs::metadata(&self.path).unwrap().ino())
    }
}

/// A fresh [`TestNetns`] and a fake daemon whose endpoints live in it; None (the test skips)
/// without root. Keep the namespace as long as the daemon is used.
fn daemon_in_netns() -> Option<(TestNetns, FakeDaemon)> {
    let ns = TestNetns::create()?;
    let d = FakeDaemon::start_with(endpoint_answers(Some(ns.path())));
    Some((ns, d))
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `secnet --socket SOCKET`, with `SECNET_SOCKET` removed from its environment.
fn secnet_command(socket: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_secnet"));
    cmd.arg("--socket").arg(socket).env_remove("SECNET_SOCKET");
    cmd
}

fn secnet(socket: &Path, args: &[&str]) -> Output {
    secnet_command(socket).args(args).output().unwrap()
}

/// Fails, showing secnet's standard error, unless secnet exited with 0.
#[track_caller]
fn assert_success(out: &Output) {
    assert!(out.status.success(), "{}", stderr(out));
}

/// Fails, showing secnet's standard error, unless secnet exited with `code`.
#[track_caller]
fn assert_exit_code(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
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
    assert_success(&out);
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
    assert_success(&out);
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
    assert_success(&out);
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
    assert_success(&out);
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
    // The fake answers `Left` to `status`, which is not a status: refused before rendering,
    // naming what came and what was due.
    let out = d.run(&["status"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("answered Left where Status was due"),
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
    assert_success(&out);
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

#[test]
fn endpoint_create_json_round_trips() {
    let d = FakeDaemon::start_with(endpoint_answers(Some("/run/secnet/netns/ep-web1".into())));
    let out = d.run(&[
        "endpoint",
        "create",
        "--network",
        "backend",
        "--name",
        "web1",
        "--ip",
        "10.0.1.2",
        "--format",
        "json",
    ]);
    assert_success(&out);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    let ep: EndpointInfo = serde_json::from_str(&text).unwrap();
    assert_eq!(
        ep,
        endpoint("web1", "backend", Some("/run/secnet/netns/ep-web1"))
    );
    d.assert_last_request(&LocalRequest::EndpointCreate {
        network: "backend".into(),
        name: Some("web1".into()),
        ip: Some("10.0.1.2".parse().unwrap()),
    });
    // The default output is the name alone.
    let out = d.run(&["endpoint", "create", "--network", "backend"]);
    assert_success(&out);
    assert_eq!(stdout(&out), "backend-0a1b2c\n");
}

#[test]
fn endpoint_ls_inspect_rm() {
    let d = FakeDaemon::start_with(endpoint_answers(None));
    let out = d.run(&["endpoint", "inspect", "web1"]);
    assert_success(&out);
    let eps: Vec<EndpointInfo> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(eps, vec![endpoint("web1", "backend", None)]);
    let out = d.run(&["endpoint", "rm", "web1", "web2"]);
    assert_success(&out);
    assert_eq!(stdout(&out), "web1\nweb2\n");
    // The fake answers `Left` to `endpoint ls`: refused as an unexpected answer.
    let out = d.run(&["endpoint", "ls"]);
    assert_exit_code(&out, 4);
    assert!(stdout(&out).is_empty());
}

#[test]
fn run_runs_the_command_in_the_namespace_and_removes_the_endpoint() {
    let Some((_ns, d)) = daemon_in_netns() else {
        return;
    };
    let out = d.run_sh("job1", "echo hi; exit 7");
    assert_exit_code(&out, 7);
    assert_eq!(stdout(&out), "hi\n");
    assert_eq!(stderr(&out), "");
    assert_eq!(
        d.requests_json(),
        vec![
            json(&LocalRequest::EndpointCreate {
                network: "backend".into(),
                name: Some("job1".into()),
                ip: None,
            }),
            json(&endpoint_rm("job1")),
        ]
    );
}

#[test]
fn run_is_in_the_endpoint_namespace_and_removes_the_generated_name() {
    let Some((ns, d)) = daemon_in_netns() else {
        return;
    };
    let out = d.run(&[
        "run",
        "--network",
        "backend",
        "--",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_success(&out);
    assert_eq!(stdout(&out), format!("{}\n", ns.id()));
    d.assert_last_request(&endpoint_rm("backend-0a1b2c"));
}

#[test]
fn run_reports_death_by_signal_as_128_plus_n() {
    let Some((_ns, d)) = daemon_in_netns() else {
        return;
    };
    let out = d.run_sh("job2", "kill -TERM $$");
    assert_exit_code(&out, 143);
    assert!(matches!(d.last_request(), LocalRequest::EndpointRm { .. }));
}

#[test]
fn run_passes_signals_on_and_still_removes_the_endpoint() {
    let Some((_ns, d)) = daemon_in_netns() else {
        return;
    };
    let mut child = secnet_command(&d.socket)
        .args(["run", "--network", "backend", "--name", "job3", "--"])
        .args([
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // SIGTERM to secnet alone (not to the command): secnet passes it on and waits.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(rest, "got-term\n", "{err}");
    assert_eq!(status.code(), Some(3), "{err}");
    d.assert_last_request(&endpoint_rm("job3"));
}

#[test]
fn run_runs_nothing_when_the_endpoint_cannot_be_created() {
    let d = FakeDaemon::start_with(endpoint_answers(Some("/nonexistent".into())));
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let out = d.run(&[
        "run",
        "--network",
        "ghost",
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "Error: network \"ghost\" not found\n");
    assert!(stdout(&out).is_empty());
    assert!(!marker.exists());
    assert_eq!(d.requests_json().len(), 1, "no EndpointRm expected");
}

#[test]
fn run_without_a_namespace_is_internal_and_removes_the_endpoint() {
    let d = FakeDaemon::start_with(endpoint_answers(None));
    let out = d.run(&["run", "--network", "backend", "--name", "j", "--", "true"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("gave no network namespace"),
        "{}",
        stderr(&out)
    );
    d.assert_last_request(&endpoint_rm("j"));
}

#[test]
fn run_without_nsenter_exits_127_and_removes_the_endpoint() {
    let d = FakeDaemon::start_with(endpoint_answers(Some("/nonexistent".into())));
    let empty = tempfile::tempdir().unwrap();
    let out = secnet_command(&d.socket)
        .args(["run", "--network", "backend", "--name", "j", "--", "true"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_exit_code(&out, 127);
    assert!(
        stderr(&out).starts_with("Error: cannot run nsenter: ")
            && stderr(&out).contains("util-linux"),
        "{}",
        stderr(&out)
    );
    assert!(matches!(d.last_request(), LocalRequest::EndpointRm { .. }));
}

#[test]
fn exec_on_an_endpoint_of_another_node_names_the_node() {
    let d = FakeDaemon::start_with(endpoint_answers(None));
    let out = d.run(&["exec", "web1", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: endpoint web1 is on node worker2 (3f2a9c0d1e2b4a5c): run `secnet exec` on that \
         host\n"
    );
    assert!(stdout(&out).is_empty());
    d.assert_last_request(&LocalRequest::EndpointInspect {
        endpoints: vec!["web1".into()],
    });
}

#[test]
fn exec_runs_in_the_namespace_and_passes_the_exit_code() {
    let Some((ns, d)) = daemon_in_netns() else {
        return;
    };
    let out = d.run(&[
        "exec",
        "web1",
        "--",
        "sh",
        "-c",
        "readlink /proc/self/ns/net; exit 5",
    ]);
    assert_exit_code(&out, 5);
    assert_eq!(stdout(&out), format!("{}\n", ns.id()));
    // Nothing but the inspect: exec leaves the endpoint alone.
    assert_eq!(d.requests_json().len(), 1);
}
