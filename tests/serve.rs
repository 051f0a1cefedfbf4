//! `bottlesync serve` (issue 12), end to end: a mirror made by `bottlesync
//! sync` from the stand-in, served by the binary on a free port, read by
//! brew 6.0's own request sequence (`bottlesync_loadtest::brew_client`) and
//! by plain HTTP clients: ranges, conditional requests, the registry view,
//! refusals of every path that tries to leave the mirror, 500 clients at
//! once, S3 streamed and redirected, and SIGTERM during a response.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bottlesync_loadtest::brew_client::{HttpMirror, percent_encode, replay_install};
use bottlesync_loadtest::{Catalog, StandIn, StandInConfig};
use common::*;

const TAGS: [&str; 3] = ["arm64_tahoe", "tahoe", "x86_64_linux"];
const BUCKET: &str = "brew-mirror";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

async fn synced_standin() -> StandIn {
    StandIn::start(StandInConfig::new(Catalog::brew_mirror()))
        .await
        .unwrap()
}

fn sync(standin: &StandIn, dest: &str) -> Command {
    let mut cmd = bottlesync();
    cmd.args(sync_args(standin, dest))
        .args(["--tags", &TAGS.join(",")]);
    cmd
}

/// A running `bottlesync serve`; killed when dropped.
struct Served {
    child: Child,
    base: String,
    log: tempfile::NamedTempFile,
}

impl Served {
    /// Starts `serve --root <root> <extra>` (with `env`) on a free port and
    /// waits for /healthz.
    async fn start(root: &str, extra: &[&str], env: &[(&'static str, String)]) -> Served {
        Served::start_env(root, extra, env, "http", client()).await
    }

    /// The same over `scheme`, waiting for /healthz with `client`.
    async fn start_with(
        root: &str,
        extra: &[&str],
        scheme: &str,
        client: reqwest::Client,
    ) -> Served {
        Served::start_env(root, extra, &[], scheme, client).await
    }

    async fn start_env(
        root: &str,
        extra: &[&str],
        env: &[(&'static str, String)],
        scheme: &str,
        client: reqwest::Client,
    ) -> Served {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = bottlesync();
        cmd.args([
            "serve",
            "--root",
            root,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(extra)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap());
        let child = cmd.spawn().expect("bottlesync serve starts");
        let served = Served {
            child,
            base: format!("{scheme}://127.0.0.1:{port}"),
            log,
        };
        for _ in 0..200 {
            if let Ok(r) = client.get(served.url("/healthz")).send().await
                && r.status() == 200
            {
                assert_eq!(r.text().await.unwrap(), "ok");
                return served;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("serve did not come up: {}", served.log());
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Whether the log says `text` within a few seconds (it is written
    /// from a thread of its own).
    async fn logs_soon(&self, text: &str) -> bool {
        for _ in 0..100 {
            if self.log().contains(text) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// `kill SIGNAL` to the server (`-TERM`, `-HUP`).
    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    fn mirror(&self) -> HttpMirror {
        HttpMirror::new(&self.base).unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn names(standin: &StandIn) -> Vec<String> {
    standin
        .catalog()
        .formulae()
        .iter()
        .map(|f| f.name.clone())
        .collect()
}

/// brew install of every formula on every tag, through the server.
async fn assert_brew_installs_everything(served: &Served, standin: &StandIn) {
    let names = names(standin);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for tag in TAGS {
        let report = replay_install(&served.mirror(), tag, &names).await.unwrap();
        assert!(report.is_complete(), "{tag}: {report}\n{}", served.log());
        assert_eq!(report.api_file, standin.packages_file(tag), "{tag}");
        assert_fresh_machines_start(&served.mirror(), standin, tag).await;
    }
}

fn bottle_path(standin: &StandIn, name: &str, tag: &str) -> (String, String) {
    let bottle = standin.bottle(name, tag).unwrap();
    (
        format!("/bottles/{}", percent_encode(&bottle.mirror_file_name)),
        bottle.sha256,
    )
}

/// HEAD, an abandoned GET, a full GET, ranges, conditional requests, the
/// manifest with brew's Bearer token, a registry blob, a missing bottle.
async fn assert_http_semantics(served: &Served, standin: &StandIn) {
    let client = client();
    let (path, sha) = bottle_path(standin, "openssl@3", "arm64_tahoe");
    let url = served.url(&path);

    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/gzip");
    assert_eq!(head.headers()["accept-ranges"], "bytes");
    assert!(head.headers().get("content-encoding").is_none());
    let size: u64 = head.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(size > 200, "{size}");
    let etag = head.headers()["etag"].to_str().unwrap().to_string();
    let modified = head.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_string();
    drop(client.get(&url).send().await.unwrap()); // abandoned after the headers
    let full = client.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    let body = full.bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), sha);
    assert_eq!(body.len() as u64, size);

    let part = client
        .get(&url)
        .header("Range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-{}/{size}", size - 1).as_str()
    );
    assert_eq!(part.bytes().await.unwrap(), body.slice(100..));
    let beyond = client
        .get(&url)
        .header("Range", format!("bytes={}-", size + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );

    let since = client
        .get(&url)
        .header("If-Modified-Since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(since.status(), 304);
    assert!(since.bytes().await.unwrap().is_empty());
    let older = client
        .get(&url)
        .header("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(older.status(), 200);
    let matching = client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(matching.status(), 304);

    let openssl = standin.bottle("openssl@3", "arm64_tahoe").unwrap();
    for manifest in [
        format!(
            "/bottles/{}/manifests/{}",
            openssl.image, openssl.version_rebuild
        ),
        format!(
            "/v2/homebrew/core/{}/manifests/{}",
            openssl.image, openssl.version_rebuild
        ),
    ] {
        let answer = client
            .get(served.url(&manifest))
            .header("Accept", OCI_INDEX)
            .header("Authorization", "Bearer QQ==")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{manifest}");
        assert_eq!(answer.headers()["content-type"], OCI_INDEX);
        assert!(answer.text().await.unwrap().contains(&sha), "{manifest}");
    }

    let blob = client
        .get(served.url(&format!(
            "/v2/homebrew/core/{}/blobs/sha256:{sha}",
            openssl.image
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(blob.status(), 200);
    assert_eq!(blob.bytes().await.unwrap(), body);
    let unknown = client
        .get(served.url(&format!(
            "/v2/homebrew/core/wget/blobs/sha256:{}",
            "0".repeat(64)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let missing = client
        .get(served.url("/bottles/nothing-1.0.arm64_tahoe.bottle.tar.gz"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        missing.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(missing.text().await.unwrap().len() < 100);
}

/// The bytes of one raw HTTP/1.1 request: the target exactly as given,
/// which no URL library would send unnormalised.
fn raw_get(base: &str, target: &str) -> String {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer QQ==\r\nConnection: close\r\n\r\n"
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
async fn a_directory_mirror_is_served_as_brew_requests_it() {
    let standin = synced_standin().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    run(sync(&standin, root)).await.assert_code(0);
    let served = Served::start(root, &[], &[]).await;

    assert_brew_installs_everything(&served, &standin).await;
    assert_http_semantics(&served, &standin).await;

    // The registry view follows bottles_hash.json as it changes: a sha256
    // it does not list is 404, and served once a new file lists it.
    let hash_path = dir.path().join("bottles_hash.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&hash_path).unwrap()).unwrap();
    let (listed_sha, listed) = record["bottles"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .map(|(sha, bottle)| (sha.clone(), bottle.clone()))
        .unwrap();
    let added = "f".repeat(64);
    let blob_url = served.url(&format!("/v2/homebrew/core/wget/blobs/sha256:{added}"));
    assert_eq!(client().get(&blob_url).send().await.unwrap().status(), 404);
    record["bottles"][&added] = listed;
    let replacement = dir.path().join("bottles_hash.json.new");
    std::fs::write(&replacement, serde_json::to_vec(&record).unwrap()).unwrap();
    std::fs::rename(&replacement, &hash_path).unwrap();
    let blob = client().get(&blob_url).send().await.unwrap();
    assert_eq!(blob.status(), 200);
    assert_eq!(sha256_hex(&blob.bytes().await.unwrap()), listed_sha);

    // 500 clients at once on keep-alive connections, every one served
    // (every bottle of the mirror: disabled formulae are not mirrored).
    let files: Vec<(String, String)> = TAGS
        .iter()
        .flat_map(|tag| {
            standin
                .catalog()
                .formulae()
                .iter()
                .filter(|f| !f.disabled)
                .filter_map(|f| standin.bottle(&f.name, tag))
                .collect::<Vec<_>>()
        })
        .map(|b| {
            (
                format!("/bottles/{}", percent_encode(&b.mirror_file_name)),
                b.sha256,
            )
        })
        .collect();
    assert!(files.len() >= 10, "{files:?}");
    let client = client();
    let clients: Vec<_> = (0..500)
        .map(|i| {
            let (path, sha) = files[i % files.len()].clone();
            let (client, url) = (client.clone(), served.url(&path));
            tokio::spawn(async move {
                let response = client.get(&url).send().await.unwrap();
                assert_eq!(response.status(), 200, "{url}");
                assert_eq!(sha256_hex(&response.bytes().await.unwrap()), sha, "{url}");
            })
        })
        .collect();
    for done in clients {
        done.await.unwrap();
    }
    // One access-log line per request, with its outcome.
    let log = served.log();
    assert!(
        log.lines().any(|l| l.contains("request")
            && l.contains("method=GET")
            && l.contains("status=206")
            && l.contains("bytes=")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_leave_the_mirror_are_refused_and_nothing_outside_is_read() {
    let standin = synced_standin().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mirror");
    let canary = "CANARY-5f1c0d2e-never-served";
    std::fs::write(dir.path().join("secret"), canary).unwrap();
    let mut cmd = sync(&standin, root.to_str().unwrap());
    cmd.args(["--formula", "wget", "--with-deps"]);
    run(cmd).await.assert_code(0);
    // Symlinks inside the mirror that lead out of it, or into its bookkeeping.
    std::os::unix::fs::symlink("../../secret", root.join("bottles/evil.tar.gz")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), root.join("api/evil.json")).unwrap();
    std::os::unix::fs::symlink("../.bottlesync/lock", root.join("bottles/lock.tar.gz")).unwrap();
    assert_eq!(
        std::fs::read_to_string(root.join("bottles/evil.tar.gz")).unwrap(),
        canary,
        "the symlink does lead out"
    );
    let served = Served::start(root.to_str().unwrap(), &[], &[]).await;

    for target in [
        "/bottles/../secret",
        "/bottles/../../secret",
        "/bottles/%2e%2e/secret",
        "/bottles/%2E%2E/%2e%2e/secret",
        "/bottles/..%2fsecret",
        "/bottles/..%2f..%2fsecret",
        "/bottles/a%5c..%5csecret",
        "/bottles/a%5c..%5c..%5csecret",
        "//etc/passwd",
        "/bottles/%2Fetc%2Fpasswd",
        "/.bottlesync/lock",
        "/bottles/evil.tar.gz",
        "/api/evil.json",
        "/bottles/lock.tar.gz",
        "/bottles_hash.json",
        "/secret",
        "/../secret",
    ] {
        let answer = raw_get(&served.base, target);
        let status = status_of(&answer);
        assert!((400..500).contains(&status), "{target}: {answer}");
        assert!(!answer.contains(canary), "{target}: {answer}");
    }
    // The server still serves what is inside.
    let (path, sha) = bottle_path(&standin, "wget", "arm64_tahoe");
    let answer = client().get(served.url(&path)).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(sha256_hex(&answer.bytes().await.unwrap()), sha);
    assert!(!served.log().contains(canary));
}

/// The test credentials moto's environment gives every process.
const SECRET_ACCESS_KEY: &str = "testing";

/// Whether `url`, presigned with SigV4 query parameters, is valid for
/// `method`: its signature recomputed from [`SECRET_ACCESS_KEY`] (AWS's
/// "Authenticating Requests: Using Query Parameters"). moto never checks a
/// presigned signature; S3 does, and it signs the method.
fn presigned_for(url: &str, method: &str) -> bool {
    let url = url::Url::parse(url).unwrap();
    let mut query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let field = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {url}"))
    };
    assert_eq!(field("X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
    assert_eq!(field("X-Amz-SignedHeaders"), "host", "{url}");
    let (signature, date, credential) = (
        field("X-Amz-Signature"),
        field("X-Amz-Date"),
        field("X-Amz-Credential"),
    );
    query.retain(|(k, _)| k != "X-Amz-Signature");
    query.sort();
    let canonical_query: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", aws_uri_encode(k), aws_uri_encode(v)))
        .collect();
    let canonical_uri: Vec<String> = url
        .path()
        .split('/')
        .map(|segment| {
            aws_uri_encode(&percent_encoding::percent_decode_str(segment).decode_utf8_lossy())
        })
        .collect();
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap()),
        None => url.host_str().unwrap().to_string(),
    };
    let canonical_request = format!(
        "{method}\n{}\n{}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD",
        canonical_uri.join("/"),
        canonical_query.join("&")
    );
    let (_, scope) = credential.split_once('/').unwrap();
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut key = format!("AWS4{SECRET_ACCESS_KEY}").into_bytes();
    for part in scope.split('/') {
        key = hmac_sha256(&key, part.as_bytes());
    }
    hex::encode(hmac_sha256(&key, string_to_sign.as_bytes())) == signature
}

/// SigV4's URI encoding: every byte but `A-Za-z0-9-_.~` as `%XX`.
fn aws_uri_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// HMAC-SHA256 (RFC 2104), for the signing key chain.
fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

#[test]
fn the_signature_check_computes_hmac_sha256_as_rfc_4231() {
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_mirror_is_served_streamed_and_by_redirect() {
    let moto = Moto::start().await;
    moto.s3()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let standin = synced_standin().await;
    let root = format!("s3://{BUCKET}/mirror");
    let mut cmd = sync(&standin, &root);
    moto.apply(&mut cmd);
    run(cmd).await.assert_code(0);

    let served = Served::start(&root, &[], &moto.env()).await;
    assert_brew_installs_everything(&served, &standin).await;
    assert_http_semantics(&served, &standin).await;
    drop(served);

    let redirecting = Served::start(&root, &["--redirect"], &moto.env()).await;
    let (path, sha) = bottle_path(&standin, "gtk+3", "tahoe");
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = no_redirects
        .get(redirecting.url(&path))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 307);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(presigned_for(&location, "GET"), "{location}");
    assert!(!presigned_for(&location, "HEAD"), "{location}");
    let bottle = client().get(&location).send().await.unwrap();
    assert_eq!(bottle.status(), 200);
    assert_eq!(sha256_hex(&bottle.bytes().await.unwrap()), sha);
    // Every URL handed out is signed for the method it will be used with:
    // a GET is redirected to a GetObject URL, a HEAD answered from the
    // object's metadata (real S3 answers a HEAD on a GET URL 403).
    let mut paths: Vec<(String, Option<u64>)> = TAGS
        .iter()
        .flat_map(|tag| {
            names(&standin)
                .into_iter()
                .filter_map(|name| standin.bottle(&name, tag))
                .map(|b| {
                    let path = format!("/bottles/{}", percent_encode(&b.mirror_file_name));
                    (path, Some(b.size))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    paths.push((format!("/api/internal/packages.{}.jws.json", TAGS[0]), None));
    let (mut redirects, mut heads) = (0, 0);
    for (path, size) in &paths {
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let answer = no_redirects
                .request(method.clone(), redirecting.url(path))
                .send()
                .await
                .unwrap();
            let headers = answer.headers();
            match answer.status().as_u16() {
                307 => {
                    let location = headers["location"].to_str().unwrap();
                    assert!(
                        presigned_for(location, method.as_str()),
                        "{method} {path}: {location}"
                    );
                    redirects += 1;
                }
                200 if method == reqwest::Method::HEAD => {
                    if let Some(size) = size {
                        assert_eq!(headers["content-length"], size.to_string().as_str());
                        assert_eq!(headers["content-type"], "application/gzip");
                    }
                    assert_eq!(headers["accept-ranges"], "bytes", "{path}");
                    assert!(headers.contains_key("etag") && headers.contains_key("last-modified"));
                    heads += 1;
                }
                404 => {} // a disabled formula's bottle is not mirrored
                other => panic!("{method} {path}: {other}"),
            }
        }
    }
    assert_eq!(
        redirects, heads,
        "every GET redirected, every HEAD answered"
    );
    assert!(
        redirects >= paths.len() / 2,
        "{redirects} of {}",
        paths.len()
    );
    // brew follows redirects: the whole install works through them.
    assert_brew_installs_everything(&redirecting, &standin).await;
    let missing = no_redirects
        .get(redirecting.url("/bottles/nothing-1.0.tahoe.bottle.tar.gz"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_response_in_flight_finish_then_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..48u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::create_dir_all(dir.path().join("bottles")).unwrap();
    std::fs::write(dir.path().join("bottles/big-1.0.tahoe.bottle.tar.gz"), &big).unwrap();
    let mut served = Served::start(dir.path().to_str().unwrap(), &[], &[]).await;

    let mut response = client()
        .get(served.url("/bottles/big-1.0.tahoe.bottle.tar.gz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut received = response.chunk().await.unwrap().unwrap().to_vec();
    assert!(received.len() < big.len());
    served.signal("-TERM");
    // A slow reader: the server is still writing when the signal lands.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert!(received == big, "{} of {} bytes", received.len(), big.len());
    drop(response);
    let child = &mut served.child;
    let status = tokio::task::block_in_place(|| child.wait()).unwrap();
    assert_eq!(status.code(), Some(0), "{}", served.log());
    let log = served.log();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("every response finished"), "{log}");
    assert!(log.contains(&format!("bytes={}", big.len())), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_truncated_while_served_gives_a_short_body_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bottles")).unwrap();
    let path = dir.path().join("bottles/cut-1.0.tahoe.bottle.tar.gz");
    let big: Vec<u8> = (0..32u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&path, &big).unwrap();
    let served = Served::start(dir.path().to_str().unwrap(), &[], &[]).await;
    let url = served.url("/bottles/cut-1.0.tahoe.bottle.tar.gz");

    let mut response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut received = response.chunk().await.unwrap().unwrap().len();
    // Truncated in place (not replaced by a rename): the open file shrinks.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1024 * 1024)
        .unwrap();
    let ended = loop {
        match response.chunk().await {
            Ok(Some(chunk)) => received += chunk.len(),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        ended.is_err() && received < big.len(),
        "{received} of {} bytes, {ended:?}",
        big.len()
    );
    // Still serving: the file as it is now.
    let now = client().get(&url).send().await.unwrap();
    assert_eq!(now.status(), 200);
    assert_eq!(now.bytes().await.unwrap(), big[..1024 * 1024]);
    let log = served.log();
    assert!(log.contains("reading failed mid-response"), "{log}");
}

/// Every key below `prefix/` in the bucket.
async fn keys_below(s3: &aws_sdk_s3::Client, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(format!("{prefix}/"))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        keys.extend(
            page.unwrap()
                .contents()
                .iter()
                .filter_map(|o| o.key().map(String::from)),
        );
    }
    keys
}

async fn read_record(s3: &aws_sdk_s3::Client) -> serde_json::Value {
    serde_json::from_slice(&s3_object_bytes(s3, BUCKET, "mirror/bottles_hash.json").await).unwrap()
}

/// Each bottle's bytes are stored once at steady state on S3: the record
/// names the flat key (made before the bottle was recorded), the dated
/// copy carries the archive tag its lifecycle rule expires, and once the
/// dated objects are gone (deleted here, as the rule would) `verify`,
/// `serve` (brew's installs and the registry view) and the next `sync`
/// still work, also over an older record that names the dated keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_mirror_works_after_its_dated_archive_expired() {
    let moto = Moto::start().await;
    let s3 = moto.s3();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let standin = synced_standin().await;
    let root = format!("s3://{BUCKET}/mirror");
    let mut cmd = sync(&standin, &root);
    moto.apply(&mut cmd);
    run(cmd).await.assert_code(0);

    let expected = expected_bottles(&standin, &TAGS, false);
    let record = read_record(&s3).await;
    for (sha, bottle) in &expected {
        let flat = format!("bottles/{}", bottle.mirror_file_name);
        assert_eq!(record["bottles"][sha]["key"], flat.as_str(), "{sha}");
        let dated = format!("mirror/{DATE}/{}", bottle.mirror_file_name);
        assert_eq!(
            object_tags(&s3, BUCKET, &dated).await,
            ["bottlesync-archive=dated"],
            "{dated}"
        );
    }
    // Nothing the record or the API files name carries the tag.
    let kept: Vec<String> = keys_below(&s3, "mirror")
        .await
        .into_iter()
        .filter(|key| !key.starts_with(&format!("mirror/{DATE}/")))
        .collect();
    assert!(
        kept.iter().any(|k| k.starts_with("mirror/api/")),
        "{kept:?}"
    );
    for key in &kept {
        assert!(object_tags(&s3, BUCKET, key).await.is_empty(), "{key}");
    }

    // The archive rule expires the dated objects.
    let dated = keys_below(&s3, &format!("mirror/{DATE}")).await;
    assert_eq!(dated.len(), expected.len(), "{dated:?}");
    for key in &dated {
        s3.delete_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    let verify = |moto: &Moto| {
        let mut cmd = bottlesync();
        moto.apply(&mut cmd);
        cmd.args(["verify", "--dest", &root]);
        cmd
    };
    run(verify(&moto)).await.assert_code(0);
    let served = Served::start(&root, &[], &moto.env()).await;
    assert_brew_installs_everything(&served, &standin).await;
    assert_http_semantics(&served, &standin).await;
    drop(served);

    // An older bottlesync's record names the dated keys, now expired:
    // every reader maps them to the flat keys by file name.
    let mut older = record.clone();
    for entry in older["bottles"].as_object_mut().unwrap().values_mut() {
        let file = entry["key"].as_str().unwrap().replace("bottles/", "");
        entry["key"] = format!("{DATE}/{file}").into();
    }
    s3.put_object()
        .bucket(BUCKET)
        .key("mirror/bottles_hash.json")
        .body(serde_json::to_vec(&older).unwrap().into())
        .send()
        .await
        .unwrap();
    let served = Served::start(&root, &[], &moto.env()).await;
    assert_http_semantics(&served, &standin).await;
    drop(served);
    run(verify(&moto)).await.assert_code(0);

    // The next sync finds everything mirrored, downloads nothing, copies
    // nothing (the flat copies are there), and its publication rewrites
    // the older entries to name the flat keys.
    standin.reset_stats();
    let mut cmd = sync(&standin, &root);
    moto.apply(&mut cmd);
    let rerun = run(cmd).await;
    rerun.assert_code(0);
    assert!(
        standin.stats().bottles.is_empty(),
        "downloaded again: {:?}\n{}",
        standin.stats().bottles.keys(),
        rerun.all_output()
    );
    let record = read_record(&s3).await;
    for (sha, bottle) in &expected {
        let flat = format!("bottles/{}", bottle.mirror_file_name);
        assert_eq!(record["bottles"][sha]["key"], flat.as_str(), "{sha}");
    }
    assert!(keys_below(&s3, &format!("mirror/{DATE}")).await.is_empty());
}

/// Raises this process's open-file limit to its hard limit; the limit now.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write `limit`.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// The bytes up to the end of a response head, read one at a time.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// A connection to `address` that sent `GET path` and read the head of
/// its 200 answer (the body is left unread).
async fn answered_head(address: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: mirror\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    stream
}

/// Reads until the server closes the connection (end of file or reset);
/// the bytes read.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> usize {
    use tokio::io::AsyncReadExt;
    let mut total = 0;
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
    }
}

/// Slow clients are not held: 2,000 connections that sent half a request
/// header are closed once --header-timeout has passed (not before), a
/// keep-alive connection left idle once --idle-timeout has passed, a
/// client that stopped reading a body once nothing moved for
/// --idle-timeout; a normal client is served all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_closed_after_their_timeouts_and_others_are_served() {
    use tokio::io::AsyncWriteExt;
    // Each is a descriptor here as well as in serve (which raises its own
    // limit): 2,000, or what this process may open with room to spare.
    let half_open_count = 2000.min(raise_open_file_limit().saturating_sub(512) as usize);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bottles")).unwrap();
    let big = vec![7u8; 32 * 1024 * 1024];
    std::fs::write(dir.path().join("bottles/big-1.0.tahoe.bottle.tar.gz"), &big).unwrap();
    // Set by their environment names: what an older serve ignores.
    let served = Served::start(
        dir.path().to_str().unwrap(),
        &[],
        &[
            ("BOTTLESYNC_SERVE_HEADER_TIMEOUT", "1".into()),
            ("BOTTLESYNC_SERVE_IDLE_TIMEOUT", "2".into()),
        ],
    )
    .await;
    let address = served.base.trim_start_matches("http://").to_string();

    // Opened in batches: the listen backlog would drop a flood of SYNs.
    let mut half_open = tokio::task::JoinSet::new();
    for batch in 0..half_open_count / 100 {
        let mut connected = Vec::new();
        for _ in 0..100 {
            let address = address.clone();
            connected.push(tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
                let opened = std::time::Instant::now();
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: mirror\r\nUser-Ag")
                    .await
                    .unwrap();
                (stream, opened)
            }));
        }
        for connection in connected {
            let (mut stream, opened) = connection.await.unwrap();
            half_open.spawn(async move {
                let read =
                    tokio::time::timeout(Duration::from_secs(30), read_until_closed(&mut stream))
                        .await;
                (read, opened.elapsed())
            });
        }
        if batch % 5 == 0 {
            let answer = client().get(served.url("/healthz")).send().await.unwrap();
            assert_eq!(answer.status(), 200, "{}", served.log());
        }
    }
    // A normal client while they are open and while they are closed.
    let normal = tokio::spawn({
        let url = served.url("/healthz");
        async move {
            for _ in 0..20 {
                let answer = client().get(&url).send().await.unwrap();
                assert_eq!(answer.status(), 200);
                assert_eq!(answer.text().await.unwrap(), "ok");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let mut closed = 0;
    while let Some(done) = half_open.join_next().await {
        let (read, after) = done.unwrap();
        let read = read.unwrap_or_else(|_| panic!("a half-open connection still open after 30 s"));
        assert_eq!(read, 0, "answered a half header");
        assert!(
            after >= Duration::from_millis(900),
            "closed after {after:?}, before the timeout"
        );
        closed += 1;
    }
    assert_eq!(closed, half_open_count / 100 * 100);
    normal.await.unwrap();
    assert!(
        served.logs_soon("--header-timeout").await,
        "{}",
        served.log()
    );

    // Keep-alive: one request, then nothing: closed after --idle-timeout.
    let mut idle = answered_head(&address, "/healthz").await;
    let answered = std::time::Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(30), read_until_closed(&mut idle))
        .await
        .expect("an idle keep-alive connection is closed");
    assert_eq!(rest, 2, "the body `ok`, then the close");
    // 2 s from the response's end, a little before `answered`: well past
    // the 1 s a header timeout would have taken.
    assert!(
        answered.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        answered.elapsed()
    );

    // A client that stops reading a body: closed once nothing moved for
    // --idle-timeout (it gets what the socket buffers held, not all).
    let mut stalled = answered_head(&address, "/bottles/big-1.0.tahoe.bottle.tar.gz").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let got = tokio::time::timeout(Duration::from_secs(30), read_until_closed(&mut stalled))
        .await
        .unwrap();
    assert!(
        got < big.len(),
        "{got} bytes: the whole body was sent to a stalled client"
    );
    assert!(served.logs_soon("--idle-timeout").await, "{}", served.log());
    // Still serving.
    let answer = client()
        .get(served.url("/bottles/big-1.0.tahoe.bottle.tar.gz"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.bytes().await.unwrap().len(), big.len());
}

/// Over --max-connections a connection is closed at once, with a warning;
/// once one of the open ones ends, new clients are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused_with_a_warning() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(
        dir.path().to_str().unwrap(),
        &[],
        &[("BOTTLESYNC_SERVE_MAX_CONNECTIONS", "20".into())],
    )
    .await;
    let address = served.base.trim_start_matches("http://").to_string();
    // Twenty keep-alive connections, each answered once and left open.
    let mut open = Vec::new();
    for _ in 0..20 {
        open.push(answered_head(&address, "/healthz").await);
    }
    let mut over = tokio::net::TcpStream::connect(&address).await.unwrap();
    let _ = over
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: mirror\r\n\r\n")
        .await;
    let got = tokio::time::timeout(Duration::from_secs(10), read_until_closed(&mut over))
        .await
        .expect("the connection over the cap is closed");
    assert_eq!(got, 0, "served over the cap");
    assert!(
        served.logs_soon("refusing connections").await
            && served.log().contains("--max-connections"),
        "{}",
        served.log()
    );
    // One ends: its slot serves the next client.
    drop(open.pop());
    let mut served_again = false;
    for _ in 0..50 {
        if let Ok(answer) = client().get(served.url("/healthz")).send().await
            && answer.status() == 200
        {
            served_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served_again, "{}", served.log());
}

/// A throwaway certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// A client that trusts only `cert_pem`; `http1`: no HTTP/2 offered.
fn tls_client(cert_pem: &str, http1: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap()]);
    let builder = if http1 { builder.http1_only() } else { builder };
    builder.build().unwrap()
}

/// `curl --cacert CERT ARGS URL`: its `-w '%{http_version} %{http_code}'`.
fn curl(cert: &std::path::Path, args: &[&str], url: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "--cacert",
        ])
        .arg(cert)
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `serve --tls-cert --tls-key`: brew's installs over HTTPS, HTTP/2 and
/// HTTP/1.1 by ALPN (reqwest and curl), a renewed certificate taken on
/// SIGHUP, a broken one refused with the old one kept; a missing file or
/// a key of another certificate stops `serve` with exit 2, naming the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_brew_over_http2_and_http1_and_reloads_on_sighup() {
    let standin = synced_standin().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mirror");
    let mut cmd = sync(&standin, root.to_str().unwrap());
    cmd.args(["--formula", "wget", "--with-deps"]);
    run(cmd).await.assert_code(0);
    let root = root.to_str().unwrap();
    let (cert_pem, key_pem) = self_signed();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, &key_pem).unwrap();
    let (cert_arg, key_arg) = (cert.to_str().unwrap(), key.to_str().unwrap());

    // Bad input: exit 2, the flag and the problem named, nothing served.
    let (other_cert, _) = self_signed();
    let other = dir.path().join("other.pem");
    std::fs::write(&other, &other_cert).unwrap();
    for (cert_file, key_file, flag, problem) in [
        (
            "/nonexistent/cert.pem",
            key_arg,
            "--tls-cert",
            "cannot read",
        ),
        (cert_arg, "/nonexistent/key.pem", "--tls-key", "cannot read"),
        (key_arg, key_arg, "--tls-cert", "no PEM certificate"),
        (other.to_str().unwrap(), key_arg, "--tls-key", "not the key"),
    ] {
        let mut cmd = bottlesync();
        cmd.args(["serve", "--root", root, "--listen", "127.0.0.1:0"])
            .args(["--tls-cert", cert_file, "--tls-key", key_file]);
        let out = run(cmd).await;
        out.assert_code(2);
        let said = out.all_output();
        assert!(
            said.contains(flag) && said.contains(problem),
            "{cert_file} {key_file}: {said}"
        );
    }

    let served = Served::start_with(
        root,
        &["--tls-cert", cert_arg, "--tls-key", key_arg],
        "https",
        tls_client(&cert_pem, false),
    )
    .await;
    let (path, sha) = bottle_path(&standin, "wget", "arm64_tahoe");
    for (http1, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let answer = tls_client(&cert_pem, http1)
            .get(served.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!((answer.status().as_u16(), answer.version()), (200, version));
        assert_eq!(sha256_hex(&answer.bytes().await.unwrap()), sha);
    }
    assert_eq!(curl(&cert, &["--http2"], &served.url(&path)), "2 200");
    assert_eq!(curl(&cert, &["--http1.1"], &served.url(&path)), "1.1 200");
    assert_eq!(curl(&cert, &["--http2", "-I"], &served.url(&path)), "2 200");
    // brew's own request sequence, over HTTP/2 and over HTTP/1.1.
    for http1 in [false, true] {
        let mirror = HttpMirror::with_client(&served.base, tls_client(&cert_pem, http1)).unwrap();
        for tag in TAGS {
            let report = replay_install(&mirror, tag, &["wget"]).await.unwrap();
            assert!(report.is_complete(), "{tag}: {report}\n{}", served.log());
        }
    }

    // A renewed certificate: taken for new connections on SIGHUP.
    let (renewed_pem, renewed_key) = self_signed();
    std::fs::write(&cert, &renewed_pem).unwrap();
    std::fs::write(&key, &renewed_key).unwrap();
    let renewed = tls_client(&renewed_pem, false);
    assert!(
        renewed.get(served.url("/healthz")).send().await.is_err(),
        "renewed before SIGHUP"
    );
    served.signal("-HUP");
    assert!(healthy_soon(&renewed, &served).await, "{}", served.log());
    assert!(
        served.logs_soon("reloaded the TLS certificate").await,
        "{}",
        served.log()
    );

    // A broken one: an error logged, the renewed one still served.
    std::fs::write(&key, "not a key").unwrap();
    served.signal("-HUP");
    assert!(
        served.logs_soon("cannot reload the TLS certificate").await,
        "{}",
        served.log()
    );
    let fresh = tls_client(&renewed_pem, false);
    let answer = fresh.get(served.url(&path)).send().await.unwrap();
    assert_eq!(sha256_hex(&answer.bytes().await.unwrap()), sha);
}

/// `client` gets 200 from /healthz within a few seconds.
async fn healthy_soon(client: &reqwest::Client, served: &Served) -> bool {
    for _ in 0..100 {
        if let Ok(answer) = client.get(served.url("/healthz")).send().await
            && answer.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The peak resident memory of process `pid`, in bytes (VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// A directory's big bodies cost no memory per download: they go from the
/// page cache to the socket (`sendfile`), whole and ranged, so 64 clients
/// that stop reading hold nothing in `serve` (reading into buffers, they
/// held ~0.8 MiB each: 50 MiB more at its peak); then every byte arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_bodies_hold_no_memory_per_download_and_arrive_whole_and_ranged() {
    use tokio::io::AsyncReadExt;
    const CLIENTS: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bottles")).unwrap();
    let big: Vec<u8> = (0..24u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(dir.path().join("bottles/big-1.0.tahoe.bottle.tar.gz"), &big).unwrap();
    let served = Served::start(dir.path().to_str().unwrap(), &[], &[]).await;
    let address = served.base.trim_start_matches("http://").to_string();
    let path = "/bottles/big-1.0.tahoe.bottle.tar.gz";
    // Warm: the lookup's and the runtime's own memory is not the bodies'.
    let whole = client().get(served.url(path)).send().await.unwrap();
    assert_eq!(whole.bytes().await.unwrap(), big);
    let before = peak_rss(served.child.id());

    let mut stalled = Vec::new();
    for _ in 0..CLIENTS {
        stalled.push(answered_head(&address, path).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = peak_rss(served.child.id()).saturating_sub(before);
    assert!(
        grown < 16 * 1024 * 1024,
        "{CLIENTS} stalled downloads grew serve's peak RSS by {} KiB",
        grown / 1024
    );
    let readers: Vec<_> = stalled
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut body = Vec::new();
                let mut buffer = vec![0u8; 256 * 1024];
                while body.len() < 24 * 1024 * 1024 {
                    let n = stream.read(&mut buffer).await.unwrap();
                    assert!(n > 0, "closed after {} bytes", body.len());
                    body.extend_from_slice(&buffer[..n]);
                }
                sha256_hex(&body)
            })
        })
        .collect();
    let expected = sha256_hex(&big);
    for reader in readers {
        assert_eq!(reader.await.unwrap(), expected);
    }
    for (first, last) in [(0, 0), (1, 2 * 1024 * 1024), (5_000_000, big.len() - 1)] {
        let part = client()
            .get(served.url(path))
            .header("Range", format!("bytes={first}-{last}"))
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206);
        assert_eq!(part.bytes().await.unwrap(), big[first..=last]);
    }
}
