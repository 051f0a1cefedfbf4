//! The nginx configuration README shows for a directory mirror
//! (`contrib/nginx/bottlesync-mirror.conf`), tested as shipped: nginx runs
//! with exactly that file included in a server block over a mirror made by
//! `bottlesync sync` from the stand-in, and brew 6.0's request sequence
//! (`bottlesync_loadtest::brew_client`) installs everything through it.
//! Without nginx (`/usr/sbin/nginx` or `nginx` on PATH) the test says so
//! on stderr and passes; `scripts/test.sh` installs it where it can.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bottlesync_loadtest::brew_client::{HttpMirror, percent_encode, replay_install};
use bottlesync_loadtest::{Catalog, StandIn, StandInConfig};
use common::*;

const TAGS: [&str; 3] = ["arm64_tahoe", "tahoe", "x86_64_linux"];
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SHIPPED_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/nginx/bottlesync-mirror.conf"
);

fn nginx_binary() -> Option<PathBuf> {
    let usual = PathBuf::from("/usr/sbin/nginx");
    if usual.is_file() {
        return Some(usual);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nginx"))
            .find(|candidate| candidate.is_file())
    })
}

/// nginx in the foreground, one process, everything it writes in `dir`;
/// killed when dropped.
struct Nginx {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Nginx {
    async fn start(binary: &Path, dir: &Path, mirror: &Path) -> Nginx {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        let config = format!(
            "daemon off;\n\
             master_process off;\n\
             worker_processes 1;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             access_log {d}/access.log;\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             server {{\n\
             listen 127.0.0.1:{port};\n\
             root {mirror};\n\
             include {SHIPPED_CONFIG};\n\
             }}\n\
             }}\n",
            mirror = mirror.display(),
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("nginx starts");
        let mut nginx = Nginx {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return nginx;
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx did not listen: {}", nginx.log());
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("stderr"), read("error.log"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bytes of one raw HTTP/1.1 request, the target exactly as given.
fn raw_get(base: &str, target: &str) -> String {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_with_the_shipped_config_serves_a_synced_mirror_to_brew() {
    let Some(binary) = nginx_binary() else {
        eprintln!(
            "\n!!! SKIPPED nginx_with_the_shipped_config_serves_a_synced_mirror_to_brew: \
             nginx is not installed (apt-get install -y nginx-light or nginx; \
             scripts/test.sh does so when it runs as root with apt-get) !!!\n"
        );
        return;
    };
    let standin = StandIn::start(StandInConfig::new(Catalog::brew_mirror()))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror");
    let mut sync = bottlesync();
    sync.args(sync_args(&standin, mirror.to_str().unwrap()))
        .args(["--tags", &TAGS.join(",")]);
    run(sync).await.assert_code(0);
    let canary = "CANARY-9b7e-never-served";
    std::fs::write(dir.path().join("secret"), canary).unwrap();
    std::os::unix::fs::symlink("../../secret", mirror.join("bottles/evil.tar.gz")).unwrap();
    assert!(
        mirror.join(".bottlesync").is_dir(),
        "sync keeps its bookkeeping in .bottlesync/"
    );
    let nginx_dir = dir.path().join("nginx");
    std::fs::create_dir(&nginx_dir).unwrap();
    let nginx = Nginx::start(&binary, &nginx_dir, &mirror).await;

    // brew install of every formula on every tag: API file, then per
    // bottle HEAD, an abandoned GET, the full GET (sha256 checked) and the
    // manifest with `Authorization: Bearer QQ==`.
    let names: Vec<String> = standin
        .catalog()
        .formulae()
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for tag in TAGS {
        let report = replay_install(&HttpMirror::new(&nginx.base).unwrap(), tag, &names)
            .await
            .unwrap();
        assert!(report.is_complete(), "{tag}: {report}\n{}", nginx.log());
        assert_eq!(report.api_file, standin.packages_file(tag), "{tag}");
        assert_fresh_machines_start(&HttpMirror::new(&nginx.base).unwrap(), &standin, tag).await;
    }

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let api = client
        .get(nginx.url("/api/internal/packages.arm64_tahoe.jws.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    assert_eq!(api.headers()["content-type"], "application/json");

    let openssl = standin.bottle("openssl@3", "arm64_tahoe").unwrap();
    let url = nginx.url(&format!(
        "/bottles/{}",
        percent_encode(&openssl.mirror_file_name)
    ));
    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/gzip");
    assert_eq!(head.headers()["accept-ranges"], "bytes");
    assert!(head.headers().get("content-encoding").is_none());
    let modified = head.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();
    let body = client
        .get(&url)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(body.headers().get("content-encoding").is_none());
    let body = body.bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), openssl.sha256);
    let part = client
        .get(&url)
        .header("Range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-{}/{}", body.len() - 1, body.len()).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), body.slice(100..));
    let since = client
        .get(&url)
        .header("If-Modified-Since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(since.status(), 304);

    let manifest = client
        .get(nginx.url(&format!(
            "/bottles/{}/manifests/{}",
            openssl.image, openssl.version_rebuild
        )))
        .header("Accept", OCI_INDEX)
        .header("Authorization", "Bearer QQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
    assert_eq!(manifest.headers()["content-type"], OCI_INDEX);
    assert!(manifest.text().await.unwrap().contains(&openssl.sha256));

    let missing = client
        .get(nginx.url("/bottles/nothing-1.0.arm64_tahoe.bottle.tar.gz"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // Bookkeeping, the hash file, anything outside api/ and bottles/, and a
    // symlink leading out of the mirror: refused, nothing outside read.
    let bookkeeping: Vec<String> = std::fs::read_dir(mirror.join(".bottlesync"))
        .unwrap()
        .map(|e| format!("/.bottlesync/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    assert!(!bookkeeping.is_empty());
    for target in bookkeeping.iter().map(String::as_str).chain([
        "/.bottlesync/",
        "/bottles/../.bottlesync/",
        "/bottles/%2e%2e/secret",
        "/bottles/../../secret",
        "/bottles/evil.tar.gz",
        "/bottles_hash.json",
        "/secret",
    ]) {
        let answer = raw_get(&nginx.base, target);
        let status = status_of(&answer);
        assert!((400..500).contains(&status), "{target}: {answer}");
        assert!(!answer.contains(canary), "{target}: {answer}");
    }
}

/// README shows the tested file, not a copy that drifted from it.
#[test]
fn readme_shows_the_shipped_nginx_config() {
    let shipped = std::fs::read_to_string(SHIPPED_CONFIG).unwrap();
    let directives = &shipped[shipped
        .find("sendfile on;")
        .expect("the file's first directive")..];
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        readme.contains(&format!("```nginx\n{directives}```")),
        "README.md's nginx block differs from contrib/nginx/bottlesync-mirror.conf"
    );
}
