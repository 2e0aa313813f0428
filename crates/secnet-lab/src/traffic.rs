//! Small traffic generators run inside endpoints by the demo and the tests: a few lines of
//! Python rather than `python3 -m http.server`, which looks its own address up in DNS
//! before listening and stalls where there is no DNS (inside an endpoint).

/// Answers every connection on `IP:8080` with an HTTP response of `SIZE` bytes ending in
/// `MARKER`. Fill in with [`tcp_server`].
const TCP_SERVER: &str = r#"
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("IP", 8080))
s.listen()
while True:
    c, _ = s.accept()
    c.recv(4096)
    c.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"." * SIZE + b"MARKER")
    c.close()
"#;

/// Fetches from `IP:8080` (retrying the connection for up to 5 s) and prints
/// `received <bytes> bytes: ...<last len(MARKER) bytes>`.
const TCP_CLIENT: &str = r#"
import socket, time
for attempt in range(50):
    try:
        c = socket.create_connection(("IP", 8080), timeout=2)
        break
    except OSError:
        if attempt == 49:
            raise
        time.sleep(0.1)
c.sendall(b"GET / HTTP/1.0\r\n\r\n")
data = b""
while True:
    b = c.recv(65536)
    if not b:
        break
    data += b
print(f"received {len(data)} bytes: ...{data[-len(b'MARKER'):].decode()}")
"#;

/// The Python source of a server on `ip`:8080 whose answer is `size` filler bytes and then
/// `marker` (ASCII, no quotes).
pub fn tcp_server(ip: &str, size: usize, marker: &str) -> String {
    TCP_SERVER
        .replace("IP", ip)
        .replace("SIZE", &size.to_string())
        .replace("MARKER", marker)
}

/// The Python source of a client of [`tcp_server`]; it prints the size received and the
/// marker it ends with.
pub fn tcp_client(ip: &str, marker: &str) -> String {
    TCP_CLIENT.replace("IP", ip).replace("MARKER", marker)
}

/// What [`tcp_client`] prints for a complete answer of [`tcp_server`].
pub fn tcp_expected(size: usize, marker: &str) -> String {
    // 19 bytes of status line and blank line.
    format!("received {} bytes: ...{marker}", 19 + size + marker.len())
}
