//! The stand-in serves Portable Ruby as ghcr.io serves
//! `homebrew/core/portable-ruby`: a tag list, an image index per version,
//! blobs by digest, all behind the registry's 401 challenge; never as a
//! formula.

use std::collections::HashMap;

use bottlesync_loadtest::{Catalog, StandIn, StandInConfig};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// GETs `url` as a registry client does: refused without a token, then
/// with the token the challenge's realm issues.
async fn get_with_token(client: &reqwest::Client, url: &str) -> reqwest::Response {
    let refused = client.get(url).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{url}");
    let challenge = refused.headers()[WWW_AUTHENTICATE].to_str().unwrap();
    let params: HashMap<&str, &str> = challenge
        .strip_prefix("Bearer ")
        .unwrap()
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k, v.trim_matches('"'))
        })
        .collect();
    assert_eq!(
        params["scope"],
        "repository:homebrew/core/portable-ruby:pull"
    );
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
    client
        .get(url)
        .header(
            AUTHORIZATION,
            format!("Bearer {}", token["token"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn tags_image_indexes_and_blobs_behind_the_challenge() {
    let standin = StandIn::start(StandInConfig {
        require_token: true,
        ..StandInConfig::new(Catalog::brew_mirror())
    })
    .await
    .unwrap();
    let client = client();
    let root = format!("{}/portable-ruby", standin.registry_root());

    let tags: Value = get_with_token(&client, &format!("{root}/tags/list"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        tags,
        serde_json::json!({"name": "homebrew/core/portable-ruby", "tags": ["3.4.8", "4.0.6"]})
    );

    let ruby = standin.portable_ruby_bottles();
    assert_eq!(ruby.len(), 8, "two versions, four families");
    for version in ["3.4.8", "4.0.6"] {
        let index: Value = get_with_token(&client, &format!("{root}/manifests/{version}"))
            .await
            .json()
            .await
            .unwrap();
        let refs: Vec<(&str, &str)> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let a = &m["annotations"];
                (
                    a["org.opencontainers.image.ref.name"].as_str().unwrap(),
                    a["sh.brew.bottle.digest"].as_str().unwrap(),
                )
            })
            .collect();
        let expected: Vec<(String, &str)> = ruby
            .iter()
            .filter(|b| b.version == version)
            .map(|b| (format!("{version}.{}", b.tag), b.sha256.as_str()))
            .collect();
        assert_eq!(
            refs,
            expected
                .iter()
                .map(|(r, d)| (r.as_str(), *d))
                .collect::<Vec<_>>()
        );
    }
    let missing = get_with_token(&client, &format!("{root}/manifests/9.9.9")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let blob = &ruby[0];
    let redirect = get_with_token(&client, &blob.url).await;
    assert_eq!(redirect.status(), StatusCode::TEMPORARY_REDIRECT);
    let signed = redirect.headers()[LOCATION].to_str().unwrap().to_string();
    let bytes = client
        .get(&signed)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), blob.sha256);

    // Not a formula: neither in formula.json nor in a per-tag file.
    let index = client
        .get(format!("{}/formula.json", standin.api_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!index.contains("portable-ruby"));
    assert!(
        !String::from_utf8_lossy(&standin.packages_file("arm64_tahoe").unwrap())
            .contains("portable-ruby")
    );
}

#[tokio::test]
async fn a_catalog_without_ruby_has_no_image() {
    let standin = StandIn::start(StandInConfig::new(Catalog::single("wget", 100)))
        .await
        .unwrap();
    let response = client()
        .get(format!(
            "{}/portable-ruby/tags/list",
            standin.registry_root()
        ))
        .header(AUTHORIZATION, "Bearer QQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(standin.portable_ruby_bottles().is_empty());
}
