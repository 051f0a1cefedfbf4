//! A mirror in S3 read the way a client of it is served: a request path
//! (`/api/...`, `/bottles/...`, percent-encoded as brew sends it) mapped to
//! the object under the prefix, with the real S3 API (GetObject,
//! HeadObject). What a server or CDN in front of the bucket would return,
//! for `bottlesync_loadtest::brew_client::replay_install`.

use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_s3::Client;
use bottlesync_loadtest::brew_client::{MirrorReader, MirrorResponse, mirror_key};

pub struct S3Mirror {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Mirror {
    pub fn new(client: Client, bucket: &str, prefix: &str) -> Self {
        S3Mirror {
            client,
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    }

    fn key(&self, path: &str) -> anyhow::Result<String> {
        let key = mirror_key(path)?;
        Ok(if self.prefix.is_empty() {
            key
        } else {
            format!("{}/{key}", self.prefix)
        })
    }
}

fn headers(content_type: Option<&str>, length: Option<i64>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(t) = content_type {
        out.push(("content-type".to_string(), t.to_string()));
    }
    if let Some(l) = length {
        out.push(("content-length".to_string(), l.to_string()));
    }
    out
}

#[async_trait]
impl MirrorReader for S3Mirror {
    async fn request(
        &self,
        method: &str,
        path: &str,
        _headers: &[(&str, &str)],
    ) -> anyhow::Result<MirrorResponse> {
        let Ok(key) = self.key(path) else {
            return Ok(MirrorResponse {
                status: 400,
                ..MirrorResponse::default()
            });
        };
        let not_found = MirrorResponse {
            status: 404,
            ..MirrorResponse::default()
        };
        if method == "HEAD" {
            return match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
            {
                Ok(head) => Ok(MirrorResponse {
                    status: 200,
                    headers: headers(head.content_type(), head.content_length()),
                    body: Vec::new(),
                }),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(not_found),
                Err(e) => Err(e).with_context(|| format!("HeadObject {key}")),
            };
        }
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(object) => {
                let headers = headers(object.content_type(), object.content_length());
                let body = object
                    .body
                    .collect()
                    .await
                    .with_context(|| format!("GetObject {key} body"))?;
                Ok(MirrorResponse {
                    status: 200,
                    headers,
                    body: body.into_bytes().to_vec(),
                })
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(not_found),
            Err(e) => Err(e).with_context(|| format!("GetObject {key}")),
        }
    }
}
