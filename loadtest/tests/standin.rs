//! The stand-in behaves like the Homebrew API + GitHub Packages described in
//! shared/reference/homebrew.md, hop by hop (redirects are not followed).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bottlesync_loadtest::{
    BottleInfo, Catalog, Fault, FormulaSpec, SizeModel, StandIn, StandInConfig,
};
use reqwest::StatusCode;
use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, LOCATION, RANGE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const ANONYMOUS: &str = "Bearer QQ==";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

async fn start(catalog: Catalog) -> StandIn {
    StandIn::start(StandInConfig::new(catalog)).await.unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn bottle(standin: &StandIn, name: &str, tag: &str) -> BottleInfo {
    standin
        .bottle(name, tag)
        .unwrap_or_else(|| panic!("{name} {tag} in catalog"))
}

/// The registry hop with anonymous auth: asserts a 307 and returns its target.
async fn signed_location(client: &reqwest::Client, url: &str) -> String {
    let response = client
        .get(url)
        .header(AUTHORIZATION, ANONYMOUS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    response.headers()[LOCATION].to_str().unwrap().to_string()
}

/// Reads a body until it ends or fails; returns the bytes and whether it failed.
async fn read_body(mut response: reqwest::Response) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return (body, false),
            Err(_) => return (body, true),
        }
    }
}

#[tokio::test]
async fn index_has_the_tricky_cases() {
    let standin = start(Catalog::tricky()).await;
    let client = client();
    let text = client
        .get(format!("{}/formula.json", standin.api_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let index: Vec<Value> = serde_json::from_str(&text).unwrap();
    let by_name: HashMap<&str, &Value> = index
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f))
        .collect();
    assert!(index.len() >= 15);

    let wget = by_name["wget"];
    assert_eq!(wget["tap"], "homebrew/core");
    assert_eq!(wget["versions"]["stable"], "1.25.0");
    assert_eq!(
        wget["dependencies"],
        serde_json::json!(["libidn2", "openssl@3"])
    );
    let files = wget["bottle"]["stable"]["files"].as_object().unwrap();
    for tag in [
        "arm64_golden_gate",
        "arm64_tahoe",
        "tahoe",
        "arm64_sequoia",
        "sequoia",
        "arm64_sonoma",
        "sonoma",
        "x86_64_linux",
        "arm64_linux",
    ] {
        assert!(files.contains_key(tag), "wget lacks {tag}");
    }
    assert_eq!(by_name["curl"]["bottle"]["stable"]["rebuild"], 1);
    assert_eq!(by_name["libidn2"]["revision"], 1);
    assert_eq!(by_name["python@3.13"]["versions"]["stable"], "3.13.9");
    let ca = by_name["ca-certificates"]["bottle"]["stable"]["files"]
        .as_object()
        .unwrap();
    assert_eq!(ca.keys().collect::<Vec<_>>(), ["all"]);
    assert_eq!(by_name["no-bottle"]["bottle"], serde_json::json!({}));
    assert_eq!(by_name["gone"]["disabled"], true);
    assert!(by_name["gone"]["bottle"]["stable"]["files"].is_object());
    assert_eq!(by_name["old-but-ok"]["deprecated"], true);
    let linux: Vec<&String> = by_name["linux-only"]["bottle"]["stable"]["files"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(linux, ["arm64_linux", "x86_64_linux"]); // serde_json sorts keys
    let old_tool = by_name["old-tool"]["bottle"]["stable"]["files"]
        .as_object()
        .unwrap();
    assert!(!old_tool.contains_key("arm64_tahoe") && old_tool.contains_key("arm64_sequoia"));
    assert!(
        by_name["ancient"]["bottle"]["stable"]["files"]
            .as_object()
            .unwrap()
            .contains_key("ventura")
    );

    // URLs: root_url on this host, image with @ -> / and + -> x, and they
    // agree with the ground truth; never a bare golden_gate.
    let truth: HashMap<(String, String), BottleInfo> = standin
        .bottles()
        .into_iter()
        .map(|b| ((b.name.clone(), b.tag.clone()), b))
        .collect();
    let mut seen = 0;
    for formula in &index {
        let name = formula["name"].as_str().unwrap();
        let Some(stable) = formula["bottle"].get("stable") else {
            continue;
        };
        assert_eq!(stable["root_url"], standin.registry_root().as_str());
        for (tag, file) in stable["files"].as_object().unwrap() {
            assert_ne!(tag, "golden_gate");
            let b = &truth[&(name.to_string(), tag.clone())];
            assert_eq!(file["sha256"], b.sha256.as_str());
            assert_eq!(
                file["url"].as_str().unwrap(),
                format!(
                    "{}/{}/blobs/sha256:{}",
                    standin.registry_root(),
                    b.image,
                    b.sha256
                )
            );
            seen += 1;
        }
    }
    assert_eq!(seen, truth.len());
    assert!(
        files["arm64_tahoe"]["url"]
            .as_str()
            .unwrap()
            .contains("/wget/blobs/")
    );
    let openssl = &truth[&("openssl@3".into(), "arm64_tahoe".into())];
    assert!(openssl.url.contains("/openssl/3/blobs/sha256:"));
    assert_eq!(
        openssl.mirror_file_name,
        "openssl@3-3.6.0.arm64_tahoe.bottle.tar.gz"
    );
    let gtk = &truth[&("gtk+3".into(), "arm64_tahoe".into())];
    assert!(gtk.url.contains("/gtkx3/blobs/"));
    let curl = &truth[&("curl".into(), "arm64_tahoe".into())];
    assert_eq!(
        curl.mirror_file_name,
        "curl-8.17.0.arm64_tahoe.bottle.1.tar.gz"
    );
    let libidn2 = &truth[&("libidn2".into(), "sonoma".into())];
    assert_eq!(
        libidn2.mirror_file_name,
        "libidn2-2.3.8_1.sonoma.bottle.tar.gz"
    );

    // The JWS wraps the very same text.
    let jws: Value = client
        .get(format!("{}/formula.jws.json", standin.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jws["payload"].as_str().unwrap(), text);
    assert_eq!(jws["signatures"][0]["header"]["kid"], "homebrew-1");
    assert_eq!(standin.stats().index_requests, 2);
}

#[tokio::test]
async fn blob_needs_auth_then_redirects_to_storage() {
    let standin = start(Catalog::tricky()).await;
    let client = client();
    let b = bottle(&standin, "openssl@3", "arm64_tahoe");

    let response = client.get(&b.url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[WWW_AUTHENTICATE],
        format!(
            "Bearer realm=\"{}/token\",service=\"ghcr.io\",scope=\"repository:homebrew/core/openssl/3:pull\"",
            standin.api_origin()
        )
        .as_str()
    );
    let wrong = client
        .get(&b.url)
        .header(AUTHORIZATION, "Bearer nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let location = signed_location(&client, &b.url).await;
    assert!(
        location.starts_with(&format!(
            "{}/blobs/{}?expires=",
            standin.storage_origin(),
            b.sha256
        )),
        "{location}"
    );
    assert!(location.contains("&sig="));
    assert_ne!(standin.storage_origin(), standin.api_origin());

    // HEAD redirects too.
    let head = client
        .head(&b.url)
        .header(AUTHORIZATION, ANONYMOUS)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), StatusCode::TEMPORARY_REDIRECT);

    // Unknown sha256, or a known one under another image: 404.
    let unknown = format!(
        "{}/openssl/3/blobs/sha256:{}",
        standin.registry_root(),
        "0".repeat(64)
    );
    let wrong_image = b.url.replace("/openssl/3/", "/wget/");
    for url in [unknown, wrong_image] {
        let response = client
            .get(&url)
            .header(AUTHORIZATION, ANONYMOUS)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{url}");
    }
}

#[tokio::test]
async fn token_flow_when_anonymous_is_refused() {
    let standin = StandIn::start(StandInConfig {
        require_token: true,
        ..StandInConfig::new(Catalog::tricky())
    })
    .await
    .unwrap();
    let client = client();
    let b = bottle(&standin, "openssl@3", "arm64_sonoma");

    let response = client
        .get(&b.url)
        .header(AUTHORIZATION, ANONYMOUS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    let params: HashMap<&str, &str> = challenge
        .strip_prefix("Bearer ")
        .unwrap()
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k, v.trim_matches('"'))
        })
        .collect();
    let token: Value = client
        .get(
            url::Url::parse_with_params(
                params["realm"],
                [("scope", params["scope"]), ("service", params["service"])],
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap().to_string();
    let auth = format!("Bearer {token}");

    let ok = client
        .get(&b.url)
        .header(AUTHORIZATION, &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::TEMPORARY_REDIRECT);
    let manifest = client
        .get(format!(
            "{}/openssl/3/manifests/3.6.0",
            standin.registry_root()
        ))
        .header(AUTHORIZATION, &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), StatusCode::OK);

    // The token is scoped to openssl/3.
    let other = bottle(&standin, "wget", "arm64_sonoma");
    let refused = client
        .get(&other.url)
        .header(AUTHORIZATION, &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(standin.stats().token_requests, 1);
    assert_eq!(standin.stats().unauthorized, 2);

    standin.set_require_token(false);
    signed_location(&client, &other.url).await;
}

#[tokio::test]
async fn storage_refuses_credentials_and_serves_the_bytes() {
    let standin = start(Catalog::tricky()).await;
    let client = client();
    let b = bottle(&standin, "python@3.13", "arm64_tahoe");
    let location = signed_location(&client, &b.url).await;

    let forwarded = client
        .get(&location)
        .header(AUTHORIZATION, ANONYMOUS)
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.status(), StatusCode::BAD_REQUEST);
    let body = forwarded.text().await.unwrap();
    assert!(body.contains("<Code>InvalidArgument</Code>"), "{body}");
    assert!(body.contains("Only one auth mechanism allowed"), "{body}");

    let response = client.get(&location).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_LENGTH],
        b.size.to_string().as_str()
    );
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, b.size);
    assert_eq!(sha256_hex(&bytes), b.sha256);
    assert_eq!(standin.bottle_bytes(&b.sha256).unwrap(), bytes.to_vec());

    let head = client.head(&location).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()[CONTENT_LENGTH], b.size.to_string().as_str());

    // A tampered signature, or an expired URL: 403.
    let tampered = location.replace("expires=", "expires=1");
    assert_eq!(
        client.get(&tampered).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let unsigned = location.split('?').next().unwrap().to_string();
    assert_eq!(
        client.get(&unsigned).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    standin.set_signed_url_ttl(Duration::ZERO);
    let expired = signed_location(&client, &b.url).await;
    let response = client.get(&expired).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("expired"));

    let stats = standin.stats();
    assert_eq!(stats.storage_auth_rejections, 1);
    assert_eq!(stats.storage_signature_rejections, 3);
}

#[tokio::test]
async fn ranges() {
    let standin = start(Catalog::tricky()).await;
    let client = client();
    let b = bottle(&standin, "python@3.13", "arm64_tahoe");
    let all = standin.bottle_bytes(&b.sha256).unwrap();
    let size = b.size;
    let location = signed_location(&client, &b.url).await;

    let from = client
        .get(&location)
        .header(RANGE, "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(from.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        from.headers()[CONTENT_RANGE],
        format!("bytes 1000-{}/{size}", size - 1).as_str()
    );
    assert_eq!(from.bytes().await.unwrap(), all[1000..]);

    let part = client
        .get(&location)
        .header(RANGE, "bytes=70000-70009")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()[CONTENT_LENGTH], "10");
    assert_eq!(part.bytes().await.unwrap(), all[70000..70010]);

    let beyond = client
        .get(&location)
        .header(RANGE, format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        beyond.headers()[CONTENT_RANGE],
        format!("bytes */{size}").as_str()
    );

    let stats = standin.stats().bottle(&b.sha256);
    assert_eq!(stats.range_requests, 3);
    assert_eq!(stats.bytes_served, size - 1000 + 10);
}

#[tokio::test]
async fn manifests_carry_the_annotations() {
    let standin = start(Catalog::tricky()).await;
    let client = client();
    let get_index = |image: &str, reference: &str| {
        client
            .get(format!(
                "{}/{image}/manifests/{reference}",
                standin.registry_root()
            ))
            .header(AUTHORIZATION, ANONYMOUS)
            .header("accept", "application/vnd.oci.image.index.v1+json")
            .send()
    };

    let response = get_index("curl", "8.17.0-1").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let index: Value = response.json().await.unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    let curl: Vec<BottleInfo> = standin
        .bottles()
        .into_iter()
        .filter(|b| b.name == "curl")
        .collect();
    assert_eq!(manifests.len(), curl.len());
    for b in &curl {
        let entry = manifests
            .iter()
            .find(|m| m["annotations"]["sh.brew.bottle.digest"] == b.sha256.as_str())
            .unwrap();
        let a = &entry["annotations"];
        assert_eq!(
            a["org.opencontainers.image.ref.name"],
            format!("8.17.0.{}.1", b.tag).as_str()
        );
        assert_eq!(a["sh.brew.bottle.size"], b.size.to_string().as_str());
        let tab: Value = serde_json::from_str(a["sh.brew.tab"].as_str().unwrap()).unwrap();
        assert!(tab.is_object());
        assert!(entry["platform"]["architecture"].is_string());
    }

    let libidn2: Value = get_index("libidn2", "2.3.8_1")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        libidn2["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "2.3.8_1.arm64_golden_gate"
    );
    let openssl = get_index("openssl/3", "3.6.0").await.unwrap();
    assert_eq!(openssl.status(), StatusCode::OK);

    let legacy: Value = get_index("legacy-sizes", "1.0.2")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for entry in legacy["manifests"].as_array().unwrap() {
        assert!(entry["annotations"]["sh.brew.bottle.digest"].is_string());
        assert!(entry["annotations"].get("sh.brew.bottle.size").is_none());
    }

    assert_eq!(
        get_index("curl", "8.17.0").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let anonymous = client
        .get(format!(
            "{}/curl/manifests/8.17.0-1",
            standin.registry_root()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(standin.stats().manifest_requests, 6);
}

#[tokio::test]
async fn status_and_rate_limit_faults_run_out() {
    let standin = start(Catalog::tricky()).await;
    let client = client();
    let b = bottle(&standin, "wget", "arm64_tahoe");
    let get = || client.get(&b.url).header(AUTHORIZATION, ANONYMOUS).send();

    standin.set_fault(
        &b.sha256,
        Fault::Status {
            code: 503,
            times: 2,
        },
    );
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::TEMPORARY_REDIRECT
    );
    assert_eq!(standin.stats().bottle(&b.sha256).blob_requests, 3);
    assert!(standin.faults().is_empty());

    standin.set_fault(
        &b.sha256,
        Fault::TooManyRequests {
            retry_after_secs: 7,
            times: 1,
        },
    );
    let limited = get().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()[RETRY_AFTER], "7");
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::TEMPORARY_REDIRECT
    );

    standin.set_fault(&b.sha256, Fault::ResetConnection { times: 1 });
    assert!(get().await.is_err(), "the connection is dropped");
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::TEMPORARY_REDIRECT
    );

    // Other bottles are unaffected; clear_faults removes everything.
    standin.set_fault(
        &b.sha256,
        Fault::Status {
            code: 500,
            times: 9,
        },
    );
    let other = bottle(&standin, "wget", "sonoma");
    signed_location(&client, &other.url).await;
    standin.clear_faults();
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::TEMPORARY_REDIRECT
    );
    assert_eq!(standin.stats().faults_injected, 4);
}

#[tokio::test]
async fn storage_faults_truncate_corrupt_and_slow() {
    let standin = start(Catalog::tricky()).await;
    let client = client();
    let b = bottle(&standin, "python@3.13", "arm64_tahoe");
    let all = standin.bottle_bytes(&b.sha256).unwrap();

    // Truncate: full Content-Length, about half the body, then the
    // connection closes; a Range request resumes.
    standin.set_fault(&b.sha256, Fault::Truncate { times: 1 });
    let location = signed_location(&client, &b.url).await;
    let response = client.get(&location).send().await.unwrap();
    assert_eq!(
        response.headers()[CONTENT_LENGTH],
        b.size.to_string().as_str()
    );
    let (mut got, failed) = read_body(response).await;
    assert!(failed, "a truncated body is an error");
    assert!(
        !got.is_empty() && (got.len() as u64) < b.size,
        "{}",
        got.len()
    );
    assert_eq!(got[..], all[..got.len()]);
    let rest = client
        .get(&location)
        .header(RANGE, format!("bytes={}-", got.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    got.extend_from_slice(&rest.bytes().await.unwrap());
    assert_eq!(sha256_hex(&got), b.sha256);

    // Corrupt: same length, wrong digest, one byte off.
    standin.set_fault(&b.sha256, Fault::Corrupt);
    for _ in 0..2 {
        let body = client
            .get(&location)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(body.len() as u64, b.size);
        assert_ne!(sha256_hex(&body), b.sha256);
        let differing = body.iter().zip(&all).filter(|(x, y)| x != y).count();
        assert_eq!(differing, 1);
    }

    // Slow: paced to about the given rate.
    let small = bottle(&standin, "wget", "sonoma");
    standin.set_fault(
        &small.sha256,
        Fault::Slow {
            bytes_per_sec: small.size * 4,
        },
    );
    let location = signed_location(&client, &small.url).await;
    let started = Instant::now();
    let body = client
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(sha256_hex(&body), small.sha256);
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

/// A catalog of one `size`-byte arm64_tahoe bottle of formula `seg`.
fn one_bottle(size: u64) -> Catalog {
    Catalog::from_formulae(vec![
        FormulaSpec::new("seg", "1.0").bottle("arm64_tahoe", size),
    ])
}

#[tokio::test]
async fn conn_rate_caps_each_storage_body() {
    const SIZE: u64 = 2_000_000;
    let standin = StandIn::start(StandInConfig {
        conn_rate_bytes_per_sec: Some(4_000_000),
        ..StandInConfig::new(one_bottle(SIZE))
    })
    .await
    .unwrap();
    let client = client();
    let origin = standin.api_origin();
    let b = bottle(&standin, "seg", "arm64_tahoe");
    let location = signed_location(&client, &b.url).await;

    // 2 MB at 4 MB/s: at least ~0.5 s (a lower bound only).
    let rate: Value = client
        .get(format!("{origin}/__standin/conn_rate"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rate["bytes_per_sec"], 4_000_000);
    let started = Instant::now();
    let body = client
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(sha256_hex(&body), b.sha256);
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");

    // Ranged GETs are paced too: two halves on two connections at once,
    // each 1 MB at 4 MB/s.
    let half = SIZE / 2;
    let started = Instant::now();
    let ranges = [(0, half - 1), (half, SIZE - 1)].map(|(first, last)| {
        let request = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(&location)
            .header(RANGE, format!("bytes={first}-{last}"));
        async move { request.send().await.unwrap().bytes().await.unwrap() }
    });
    let [a, z] = futures::future::join_all(ranges).await.try_into().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(sha256_hex(&[a, z].concat()), b.sha256);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert_eq!(standin.stats().bottle(&b.sha256).range_requests, 2);

    // The control endpoint lifts the cap (and sets it).
    let set = client
        .put(format!("{origin}/__standin/conn_rate"))
        .json(&serde_json::json!({"bytes_per_sec": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    assert_eq!(standin.conn_rate(), None);
    standin.set_conn_rate(Some(123));
    assert_eq!(standin.conn_rate(), Some(123));
    standin.set_conn_rate(Some(0));
    assert_eq!(standin.conn_rate(), None);
}

#[tokio::test]
async fn ignore_range_and_storage_status_faults() {
    let standin = start(one_bottle(300_000)).await;
    let client = client();
    let origin = standin.api_origin();
    let b = bottle(&standin, "seg", "arm64_tahoe");
    let all = standin.bottle_bytes(&b.sha256).unwrap();
    let location = signed_location(&client, &b.url).await;
    let ranged = |range: &str| {
        client
            .get(&location)
            .header(RANGE, format!("bytes={range}"))
            .send()
    };

    // ignore_range, set over HTTP: 200 and the whole body, every time.
    let set = client
        .post(format!("{origin}/__standin/faults"))
        .json(&serde_json::json!({"sha256": b.sha256, "fault": {"kind": "ignore_range"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    for range in ["100-", "0-99", "-10"] {
        let response = ranged(range).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{range}");
        assert!(response.headers().get(CONTENT_RANGE).is_none());
        assert_eq!(
            response.headers()[CONTENT_LENGTH],
            b.size.to_string().as_str()
        );
        assert_eq!(response.bytes().await.unwrap(), all[..]);
    }
    assert_eq!(standin.faults().len(), 1, "permanent");
    let stats = standin.stats();
    assert_eq!(stats.bottle(&b.sha256).range_requests, 3);
    assert_eq!(stats.faults_injected, 3);

    // storage_status: the registry and the first GETs (plain, from 0) are
    // served; the next two resumed ranges get 503, then it recovers.
    standin.reset_stats();
    standin.set_fault(
        &b.sha256,
        Fault::StorageStatus {
            code: 503,
            times: 2,
        },
    );
    let location = signed_location(&client, &b.url).await;
    let plain = client.get(&location).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(plain.bytes().await.unwrap(), all[..]);
    assert_eq!(
        ranged("0-99").await.unwrap().status(),
        StatusCode::PARTIAL_CONTENT
    );
    for _ in 0..2 {
        let refused = ranged("1000-").await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = refused.text().await.unwrap();
        assert!(text.contains("<Error><Code>"), "{text}");
    }
    let rest = ranged("1000-").await.unwrap();
    assert_eq!(rest.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(rest.bytes().await.unwrap(), all[1000..]);
    assert!(standin.faults().is_empty(), "used up");
    let stats = standin.stats();
    assert_eq!(stats.faults_injected, 2);
    assert_eq!(stats.blob_requests, 1);
    let per_bottle = stats.bottle(&b.sha256);
    assert_eq!(per_bottle.storage_gets, 5);
    assert_eq!(per_bottle.range_requests, 4);

    // truncate cuts a ranged body at about half of the range, while
    // Content-Length promises all of it.
    standin.set_fault(&b.sha256, Fault::Truncate { times: 1 });
    let (first, last) = (10_000u64, 209_999u64);
    let response = ranged(&format!("{first}-{last}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(response.headers()[CONTENT_LENGTH], "200000");
    let (got, failed) = read_body(response).await;
    assert!(failed, "a truncated body is an error");
    assert!(!got.is_empty() && got.len() <= 100_000, "{}", got.len());
    assert_eq!(got[..], all[first as usize..first as usize + got.len()]);
    let whole = ranged(&format!("{first}-{last}")).await.unwrap();
    assert_eq!(
        whole.bytes().await.unwrap(),
        all[first as usize..=last as usize]
    );
}

#[tokio::test]
async fn stats_count_requests_and_bytes() {
    let standin = start(Catalog::tricky()).await;
    let client = client();
    let b = bottle(&standin, "curl", "x86_64_linux");
    client
        .get(format!("{}/formula.json", standin.api_url()))
        .send()
        .await
        .unwrap();
    let location = signed_location(&client, &b.url).await;
    client
        .get(&location)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    client
        .get(&location)
        .header(RANGE, "bytes=0-99")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    client.head(&location).send().await.unwrap();

    let stats = standin.stats();
    assert_eq!(stats.index_requests, 1);
    assert_eq!(stats.blob_requests, 1);
    assert_eq!(stats.storage_gets, 2);
    assert_eq!(stats.head_requests, 1);
    assert_eq!(stats.range_requests, 1);
    assert_eq!(stats.bytes_served, b.size + 100);
    let per_bottle = stats.bottle(&b.sha256);
    assert_eq!(per_bottle.blob_requests, 1);
    assert_eq!(per_bottle.storage_gets, 2);
    assert_eq!(per_bottle.storage_head_requests, 1);
    assert_eq!(per_bottle.bytes_served, b.size + 100);
    assert_eq!(per_bottle.range_requests, 1);
    assert_eq!(stats.bottles.len(), 1);

    standin.reset_stats();
    assert_eq!(standin.stats(), Default::default());
}

#[tokio::test]
async fn control_endpoints_over_http() {
    let standin = start(Catalog::tricky()).await;
    let client = client();
    let origin = standin.api_origin();
    let bottles: Vec<BottleInfo> = client
        .get(format!("{origin}/__standin/bottles"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bottles, standin.bottles());
    let b = &bottles[0];

    let set = client
        .post(format!("{origin}/__standin/faults"))
        .json(&serde_json::json!({
            "sha256": b.sha256,
            "fault": {"kind": "status", "code": 502, "times": 1},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        standin.faults(),
        vec![(
            b.sha256.clone(),
            Fault::Status {
                code: 502,
                times: 1
            }
        )]
    );
    let response = client
        .get(&b.url)
        .header(AUTHORIZATION, ANONYMOUS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);

    let unknown = client
        .post(format!("{origin}/__standin/faults"))
        .json(&serde_json::json!({"sha256": "00", "fault": {"kind": "corrupt"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    let stats: Value = client
        .get(format!("{origin}/__standin/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["blob_requests"], 1);
    assert_eq!(stats["bottles"][&b.sha256]["blob_requests"], 1);

    standin.set_fault(&b.sha256, Fault::Corrupt);
    let reset = client
        .post(format!("{origin}/__standin/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert!(standin.faults().is_empty());
    assert_eq!(standin.stats(), Default::default());
}

#[tokio::test]
async fn index_override_serves_hostile_json() {
    let standin = start(Catalog::tricky()).await;
    let client = client();
    let b = bottle(&standin, "wget", "arm64_tahoe");
    let hostile = serde_json::json!([{
        "name": "../../etc/passwd",
        "versions": {"stable": "1.0"},
        "bottle": {"stable": {"rebuild": 0, "root_url": "http://evil.invalid/v2", "files": {
            "arm64_tahoe": {"cellar": ":any", "url": b.url, "sha256": b.sha256}
        }}}
    }]);
    standin.set_index_json(hostile.clone());
    let url = format!("{}/formula.json", standin.api_url());
    let served: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, hostile);
    let jws: Value = client
        .get(format!("{}/formula.jws.json", standin.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payload: Value = serde_json::from_str(jws["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload, hostile);
    // Blobs are still served for known sha256s.
    signed_location(&client, &b.url).await;

    standin.set_index_text("[{\"name\": \"trunc");
    assert_eq!(
        client.get(&url).send().await.unwrap().text().await.unwrap(),
        "[{\"name\": \"trunc"
    );
    standin.clear_index_override();
    let index: Vec<Value> = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(index.len(), standin.catalog().formulae().len());
}

#[tokio::test]
async fn per_tag_and_per_formula_api_files() {
    let standin = start(Catalog::tricky()).await;
    let client = client();
    let jws: Value = client
        .get(format!(
            "{}/internal/packages.arm64_tahoe.jws.json",
            standin.api_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let payload: Value = serde_json::from_str(jws["payload"].as_str().unwrap()).unwrap();
    let old_tool = &payload["formulae"]["old-tool"];
    assert_eq!(old_tool["bottle_tag"], ":arm64_sequoia");
    assert_eq!(
        old_tool["bottle_checksum"],
        bottle(&standin, "old-tool", "arm64_sequoia")
            .sha256
            .as_str()
    );
    let wget = &payload["formulae"]["wget"];
    assert!(wget.get("bottle_tag").is_none());
    assert_eq!(payload["formulae"]["ca-certificates"]["bottle_tag"], ":all");
    assert!(
        payload["formulae"]["linux-only"]
            .get("bottle_checksum")
            .is_none()
    );
    // tricky's uses_from_macos and requirement, as brew writes them.
    assert_eq!(
        payload["formulae"]["curl"]["stable_uses_from_macos"],
        serde_json::json!([["zlib", {":since": ":sequoia"}]])
    );
    assert_eq!(
        payload["formulae"]["wget"]["stable_uses_from_macos"],
        serde_json::json!([["zlib"]])
    );
    assert_eq!(
        payload["formulae"]["linux-only"]["stable_dependencies"],
        serde_json::json!([":linux"])
    );

    let unknown_tag = client
        .get(format!(
            "{}/internal/packages.golden_gate.jws.json",
            standin.api_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_tag.status(), StatusCode::NOT_FOUND);

    let one: Value = client
        .get(format!("{}/formula/openssl@3.json", standin.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["name"], "openssl@3");

    // Conditional re-fetch of the index.
    let url = format!("{}/formula.json", standin.api_url());
    let first = client.get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].clone();
    let again = client
        .get(&url)
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn custom_and_generated_catalogs() {
    let custom = Catalog::from_formulae(vec![
        FormulaSpec {
            rebuild: 2,
            revision: 3,
            ..FormulaSpec::new("tool+plus@2", "1.0")
        }
        .bottle("arm64_tahoe", 1)
        .bottle("x86_64_linux", 3 << 20),
    ]);
    let standin = start(custom).await;
    let client = client();
    let tiny = bottle(&standin, "tool+plus@2", "arm64_tahoe");
    assert_eq!(tiny.image, "toolxplus/2");
    assert_eq!(tiny.pkg_version, "1.0_3");
    assert_eq!(tiny.version_rebuild, "1.0_3-2");
    assert_eq!(
        tiny.mirror_file_name,
        "tool+plus@2-1.0_3.arm64_tahoe.bottle.2.tar.gz"
    );
    let big = bottle(&standin, "tool+plus@2", "x86_64_linux");
    for b in [&tiny, &big] {
        let location = signed_location(&client, &b.url).await;
        let body = client
            .get(&location)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(body.len() as u64, b.size);
        assert_eq!(sha256_hex(&body), b.sha256);
    }
    standin.shutdown().await;

    let generated = Catalog::generated(300, 42, SizeModel::fixed(512));
    assert_eq!(
        generated,
        Catalog::generated(300, 42, SizeModel::fixed(512))
    );
    let standin = start(generated).await;
    let index: Vec<Value> = client
        .get(format!("{}/formula.json", standin.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(index.len(), 300);
    let bottles = standin.bottles();
    assert!(bottles.len() > 300 * 5, "{}", bottles.len());
    assert!(
        bottles
            .iter()
            .all(|b| b.size == 512 && b.tag != "golden_gate")
    );
    let files: usize = index
        .iter()
        .filter_map(|f| f["bottle"].get("stable"))
        .map(|s| s["files"].as_object().unwrap().len())
        .sum();
    assert_eq!(files, bottles.len());
}

#[tokio::test]
async fn shutdown_stops_both_hosts() {
    let standin = start(Catalog::single("big", 1 << 20)).await;
    let api = standin.api_url();
    let storage = standin.storage_origin();
    let client = client();
    assert!(
        client
            .get(format!("{api}/formula.json"))
            .send()
            .await
            .is_ok()
    );
    drop(standin);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(
        fresh
            .get(format!("{api}/formula.json"))
            .send()
            .await
            .is_err()
    );
    assert!(
        fresh
            .get(format!("{storage}/blobs/x"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn api_files_are_gzipped_on_request() {
    let standin = start(Catalog::tricky()).await;
    let url = format!("{}/formula.json", standin.api_url());
    let plain_client = reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .build()
        .unwrap();
    let plain = plain_client.get(&url).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();

    let raw = plain_client
        .get(&url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-encoding"], "gzip");
    let raw = raw.bytes().await.unwrap();
    assert_eq!(&raw[..2], &[0x1f, 0x8b]);

    // A decoding client gets the very same bytes as an identity request.
    let decoded = client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(decoded, plain);
}

async fn packages_payload(client: &reqwest::Client, standin: &StandIn, tag: &str) -> Value {
    let jws: Value = client
        .get(format!(
            "{}/internal/packages.{tag}.jws.json",
            standin.api_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jws["signatures"][0]["header"]["kid"], "homebrew-1");
    serde_json::from_str(jws["payload"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn per_tag_files_follow_upstreams_schema() {
    let standin = start(Catalog::brew_mirror()).await;
    let client = client();
    let payload = packages_payload(&client, &standin, "tahoe").await;
    let keys: Vec<&str> = payload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "metadata",
        "formulae",
        "casks",
        "formula_aliases",
        "formula_renames",
        "cask_renames",
        "formula_tap_git_head",
        "cask_tap_git_head",
        "formula_tap_migrations",
        "cask_tap_migrations",
    ];
    expected.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, expected);
    assert_eq!(payload["metadata"]["bottle_tag"], "tahoe");
    assert_eq!(payload["metadata"]["homebrew_version"], "6.0.18");
    assert!(payload["metadata"]["generated_at"].is_u64());
    assert_eq!(payload["formula_tap_git_head"].as_str().unwrap().len(), 40);
    let formulae = &payload["formulae"];

    // Zeros and blanks are dropped; the build dependency is an object and
    // its type a symbol (":build"), as brew's deep_stringify_symbols writes.
    let gtk = &formulae["gtk+3"];
    assert_eq!(
        gtk["stable_dependencies"],
        serde_json::json!(["libsigc++", "openssl@3", {"pkgconf": ":build"}])
    );
    for absent in [
        "revision",
        "bottle_rebuild",
        "bottle_tag",
        "deprecated",
        "disabled",
    ] {
        assert!(gtk.get(absent).is_none(), "gtk+3 has {absent}: {gtk}");
    }
    assert_eq!(gtk["stable_version"], "3.24.51");
    assert_eq!(
        gtk["bottle_checksum"],
        bottle(&standin, "gtk+3", "tahoe").sha256.as_str()
    );
    assert!(formulae["pkgconf"].get("stable_dependencies").is_none());
    let sigc = &formulae["libsigc++"];
    assert_eq!(sigc["revision"], 2);
    assert_eq!(sigc["bottle_rebuild"], 1);
    // bottle_tag only for a fallback: an older macOS, or `all` (symbols).
    assert_eq!(formulae["old-tool"]["bottle_tag"], ":sequoia");
    assert_eq!(
        formulae["old-tool"]["bottle_checksum"],
        bottle(&standin, "old-tool", "sequoia").sha256.as_str()
    );
    assert_eq!(formulae["ca-certificates"]["bottle_tag"], ":all");
    let linux_only = &formulae["linux-only"];
    for absent in [
        "bottle_checksum",
        "bottle_rebuild",
        "bottle_tag",
        "bottle_cellar",
    ] {
        assert!(linux_only.get(absent).is_none(), "{linux_only}");
    }
    // bottle_cellar only when not :any_skip_relocation.
    for (name, entry) in formulae.as_object().unwrap() {
        let Some(tag) = entry.get("bottle_checksum").map(|_| {
            let tag = entry["bottle_tag"].as_str().unwrap_or(":tahoe");
            tag.strip_prefix(':').unwrap().to_string()
        }) else {
            continue;
        };
        let cellar = bottle(&standin, name, &tag).cellar;
        match entry.get("bottle_cellar") {
            Some(c) => assert_eq!(c.as_str(), Some(cellar.as_str()), "{name}"),
            None => assert_eq!(cellar, ":any_skip_relocation", "{name}"),
        }
    }
    let sequoia = packages_payload(&client, &standin, "arm64_sequoia").await;
    assert!(sequoia["formulae"]["old-tool"].get("bottle_tag").is_none());
    let linux = packages_payload(&client, &standin, "x86_64_linux").await;
    assert!(
        linux["formulae"]["linux-only"]
            .get("bottle_checksum")
            .is_some()
    );
    assert!(
        linux["formulae"]["old-tool"]
            .get("bottle_checksum")
            .is_none()
    );

    // formula.json carries build dependencies apart.
    let index: Vec<Value> = client
        .get(format!("{}/formula.json", standin.api_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gtk = index.iter().find(|f| f["name"] == "gtk+3").unwrap();
    assert_eq!(gtk["build_dependencies"], serde_json::json!(["pkgconf"]));
    assert_eq!(
        gtk["dependencies"],
        serde_json::json!(["libsigc++", "openssl@3"])
    );

    // Disabled and deprecated are the presence of brew's disable_args and
    // deprecate_args (symbol keys, a known reason as a symbol), no flags.
    let tricky = start(Catalog::tricky()).await;
    let payload = packages_payload(&client, &tricky, "arm64_tahoe").await;
    let formulae = &payload["formulae"];
    assert_eq!(
        formulae["gone"]["disable_args"],
        serde_json::json!({":date": "2025-06-01", ":because": ":no_license"})
    );
    assert_eq!(
        formulae["old-but-ok"]["deprecate_args"],
        serde_json::json!({":date": "2025-01-01", ":because": ":unmaintained"})
    );
    for (name, entry) in formulae.as_object().unwrap() {
        for flag in ["disabled", "deprecated"] {
            assert!(entry.get(flag).is_none(), "{name} has {flag}");
        }
    }
    assert!(formulae["wget"].get("disable_args").is_none());
    assert!(formulae["wget"].get("deprecate_args").is_none());
}

#[tokio::test]
async fn per_tag_files_are_byte_identical_and_follow_a_version_bump() {
    let catalog = Catalog::brew_mirror();
    let a = start(catalog.clone()).await;
    let b = start(catalog.clone()).await;
    let client = client();
    for tag in ["arm64_tahoe", "tahoe", "x86_64_linux"] {
        let get = |standin: &StandIn| {
            client
                .get(format!(
                    "{}/internal/packages.{tag}.jws.json",
                    standin.api_url()
                ))
                .send()
        };
        let first = get(&a).await.unwrap().bytes().await.unwrap();
        let second = get(&b).await.unwrap().bytes().await.unwrap();
        assert_eq!(first, second, "{tag}");
        assert_eq!(a.packages_file(tag).as_deref(), Some(&first[..]));
    }

    let bumped = start(catalog.with_version("gtk+3", "3.24.52")).await;
    for tag in ["arm64_tahoe", "tahoe"] {
        let old = bottle(&a, "gtk+3", tag);
        let new = bottle(&bumped, "gtk+3", tag);
        assert_ne!(old.sha256, new.sha256);
        assert_eq!(
            new.mirror_file_name,
            format!("gtk+3-3.24.52.{tag}.bottle.tar.gz")
        );
        for name in ["openssl@3", "libsigc++", "pkgconf", "wget"] {
            assert_eq!(
                bottle(&a, name, tag).sha256,
                bottle(&bumped, name, tag).sha256,
                "{name} {tag}"
            );
        }
        assert_ne!(a.packages_file(tag), bumped.packages_file(tag));
    }
    let sigc = catalog.with_version("libsigc++", "3.7.0");
    let sigc = sigc.formula("libsigc++").unwrap();
    assert_eq!((sigc.revision, sigc.rebuild), (0, 0));
}

#[tokio::test]
async fn a_tag_without_per_tag_file_answers_404() {
    let standin = StandIn::start(StandInConfig {
        packages_tags: Some(vec!["arm64_tahoe".into()]),
        ..StandInConfig::new(Catalog::brew_mirror())
    })
    .await
    .unwrap();
    let client = client();
    let url = |tag: &str| format!("{}/internal/packages.{tag}.jws.json", standin.api_url());
    let status = |tag: &'static str| {
        let request = client.get(url(tag)).send();
        async move { request.await.unwrap().status() }
    };
    assert_eq!(status("arm64_tahoe").await, StatusCode::OK);
    assert_eq!(status("tahoe").await, StatusCode::NOT_FOUND);
    assert_eq!(standin.packages_file("tahoe"), None);
    assert!(standin.packages_file("arm64_tahoe").is_some());
    standin.set_packages_tags(None);
    assert_eq!(status("tahoe").await, StatusCode::OK);
    standin.set_packages_tags(Some(Vec::new()));
    assert_eq!(status("arm64_tahoe").await, StatusCode::NOT_FOUND);
    assert_eq!(
        standin
            .stats()
            .path("/api/internal/packages.arm64_tahoe.jws.json"),
        2
    );
}

#[tokio::test]
async fn requests_are_counted_per_path() {
    let standin = start(Catalog::brew_mirror()).await;
    let client = client();
    let packages = "/api/internal/packages.tahoe.jws.json";
    for _ in 0..2 {
        let response = client
            .get(format!("{}{packages}", standin.api_origin()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let gtk = bottle(&standin, "gtk+3", "tahoe");
    let manifest = format!(
        "/v2/homebrew/core/{}/manifests/{}",
        gtk.image, gtk.version_rebuild
    );
    client
        .head(format!("{}{manifest}", standin.api_origin()))
        .header(AUTHORIZATION, ANONYMOUS)
        .send()
        .await
        .unwrap();
    let missing = "/api/internal/packages.no_such_tag.jws.json";
    client
        .get(format!("{}{missing}", standin.api_origin()))
        .send()
        .await
        .unwrap();
    // The control endpoint is not counted and carries the counts.
    let stats: bottlesync_loadtest::Stats = client
        .get(format!("{}/__standin/stats", standin.api_origin()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.path(packages), 2);
    assert_eq!(stats.path(&manifest), 1);
    assert_eq!(stats.path(missing), 1);
    assert_eq!(stats.path("/api/internal/packages.arm64_tahoe.jws.json"), 0);
    assert_eq!(stats.paths.len(), 3, "{:?}", stats.paths);
    assert_eq!(stats, standin.stats());
    // Existing counters are unchanged by the per-path ones.
    assert_eq!(stats.api_file_requests, 3);
    assert_eq!(stats.manifest_requests, 1);
    standin.reset_stats();
    assert!(standin.stats().paths.is_empty());
}

/// Serves a directory mirror over HTTP (like `python -m http.server`).
async fn serve_directory(root: std::path::PathBuf) -> String {
    use axum::http::{Method, Uri};
    use axum::response::IntoResponse;
    use bottlesync_loadtest::brew_client::{DirectoryMirror, MirrorReader};
    let mirror = std::sync::Arc::new(DirectoryMirror(root));
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
        let mirror = mirror.clone();
        async move {
            match mirror.request(method.as_str(), uri.path(), &[]).await {
                Ok(r) => {
                    let content_type = r.header("content-type").map(str::to_string);
                    let mut response =
                        (axum::http::StatusCode::from_u16(r.status).unwrap(), r.body)
                            .into_response();
                    if let Some(ct) = content_type {
                        response
                            .headers_mut()
                            .insert("content-type", ct.parse().unwrap());
                    }
                    response
                }
                Err(_) => axum::http::StatusCode::BAD_REQUEST.into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn replay_over_http_of_a_reference_mirror() {
    use bottlesync_loadtest::BREW_MIRROR_TAGS;
    use bottlesync_loadtest::brew_client::{HttpMirror, replay_install, write_reference_mirror};
    let catalog = Catalog::brew_mirror();
    let standin = start(catalog.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    write_reference_mirror(&catalog, &BREW_MIRROR_TAGS, dir.path()).unwrap();
    let mirror = HttpMirror::new(serve_directory(dir.path().to_path_buf()).await).unwrap();
    for tag in BREW_MIRROR_TAGS {
        let report = replay_install(&mirror, tag, &["gtk+3", "wget", "linux-only"])
            .await
            .unwrap();
        assert!(report.is_complete(), "{report}");
        // The reference mirror's API file is upstream's, byte for byte.
        assert_eq!(report.api_file, standin.packages_file(tag), "{tag}");
    }
    std::fs::remove_file(dir.path().join("bottles/wget-1.25.0.sequoia.bottle.tar.gz")).unwrap();
    let report = replay_install(&mirror, "sequoia", &["wget"]).await.unwrap();
    assert_eq!(report.problems(), [("wget".to_string(), "missing")]);
}
