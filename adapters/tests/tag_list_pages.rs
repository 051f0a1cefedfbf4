//! `RegistryClient::tag_list` follows the OCI distribution spec's pages
//! (`Link: <...>; rel="next"`), with the registry's token, and never sends
//! that token to another origin.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header::LINK;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bottlesync_adapters::http::registry::{HttpSettings, RegistryClient};
use bottlesync_core::ports::registry::Registry;
use serde_json::json;
use std::collections::HashMap;
use url::Url;

/// Two pages of tags; with `elsewhere`, page 1 points page 2 at another origin.
async fn tags(
    State(elsewhere): State<Option<String>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    match query.get("last").map(String::as_str) {
        None => {
            let next = match &elsewhere {
                Some(origin) => format!("{origin}/v2/x/portable-ruby/tags/list?last=3.4.8"),
                None => "/v2/x/portable-ruby/tags/list?n=2&last=3.4.8".into(),
            };
            (
                [(LINK, format!("<{next}>; rel=\"next\""))],
                axum::Json(json!({"name": "x/portable-ruby", "tags": ["3.3.7", "3.4.8"]})),
            )
                .into_response()
        }
        Some(_) => axum::Json(json!({"name": "x/portable-ruby", "tags": ["4.0.6", "latest"]}))
            .into_response(),
    }
}

async fn serve(elsewhere: Option<String>) -> String {
    let app = Router::new()
        .route("/v2/x/portable-ruby/tags/list", get(tags))
        .with_state(elsewhere);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    origin
}

#[tokio::test]
async fn every_page_is_read_and_the_token_stays_on_its_origin() {
    let client = RegistryClient::new(&HttpSettings::default()).unwrap();
    let origin = serve(None).await;
    let repository = Url::parse(&format!("{origin}/v2/x/portable-ruby")).unwrap();
    assert_eq!(
        client.tag_list(&repository).await.unwrap(),
        ["3.3.7", "3.4.8", "4.0.6", "latest"]
    );

    let other = serve(None).await;
    let origin = serve(Some(other.clone())).await;
    let repository = Url::parse(&format!("{origin}/v2/x/portable-ruby")).unwrap();
    let err = client.tag_list(&repository).await.unwrap_err().to_string();
    assert!(
        err.contains("another origin") && err.contains(&other),
        "{err}"
    );
}
