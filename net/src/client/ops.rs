//! The API calls of [`Client`], one per lockd endpoint of the lease core.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::body;
use super::endpoint::query;
use super::error::{header_str, ClientError};
use super::handle::{Answer, Call, Client};
use super::retry::{acquire_retry_hint, acquire_timeout};
use super::types::{Conditions, Lease, LeaseRef, StateDoc};
use crate::wire::{
    header, AcquireRequest, AcquireResponse, DescribeResponse, KeepaliveRequest, KeepaliveResponse, MetadataRequest,
    MetadataResponse, ReleaseRequest, ReleaseResponse, RemoveResponse, UpdateResponse,
};

/// What lease-guarded answers say about the lease and the state besides
/// their body; the session uses it to keep its view current.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) fencing_token: Option<i64>,
    pub(crate) version: Option<i64>,
    pub(crate) etag: Option<String>,
}

impl Meta {
    fn from_headers(headers: &HeaderMap) -> Result<Meta, ClientError> {
        Ok(Meta {
            fencing_token: int_header(headers, header::FENCING_TOKEN)?,
            version: int_header(headers, header::KEY_VERSION)?,
            etag: header_str(headers, http::header::ETAG.as_str()).map(|v| v.trim_matches('"').to_owned()),
        })
    }
}

impl Client {
    /// Acquires the lease on `req.key`, retrying with backoff while the key
    /// is held (`409 waiting`), the server is throttling (`429`) or
    /// unavailable (`503`), or the request failed in transit — up to the
    /// configured number of retries. Other refusals (`already_exists`, bad
    /// input) are returned at once.
    pub async fn acquire(&self, req: &AcquireRequest) -> Result<Lease, ClientError> {
        let call = Call {
            method: Method::POST,
            path: "/v1/acquire",
            query: String::new(),
            headers: Vec::new(),
            body: Some(to_json(req)?),
            timeout: acquire_timeout(self.inner.timeout, req.block_seconds),
        };
        let mut attempt = 0;
        loop {
            let err = match self.send(&call).await {
                Ok(answer) => return lease_from(&answer),
                Err(err) => err,
            };
            let hint = match acquire_retry_hint(&err) {
                Some(hint) if attempt < self.inner.acquire_retries => hint,
                _ => return Err(err),
            };
            let wait = self.inner.backoff.delay(attempt, hint, fastrand::f64());
            tracing::debug!(attempt, ?wait, error = %err, "acquire not granted, retrying");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Extends the lease to `ttl_seconds` from now (≤ 0: the server's default TTL).
    pub async fn keepalive(&self, lease: &LeaseRef, ttl_seconds: i64) -> Result<KeepaliveResponse, ClientError> {
        Ok(self.keepalive_meta(lease, Some(ttl_seconds)).await?.0)
    }

    pub(crate) async fn keepalive_meta(
        &self,
        lease: &LeaseRef,
        ttl_seconds: Option<i64>,
    ) -> Result<(KeepaliveResponse, Meta), ClientError> {
        let req = KeepaliveRequest {
            namespace: non_empty(&lease.namespace),
            key: Some(lease.key.clone()),
            lease_id: Some(lease.lease_id.clone()),
            ttl_seconds,
            txn_id: non_empty(&lease.txn_id),
        };
        let answer = self
            .send(&self.lease_call(Method::POST, "/v1/keepalive", String::new(), lease, false, &req)?)
            .await?;
        Ok((decode(&answer, "keepalive")?, Meta::from_headers(&answer.headers)?))
    }

    /// Releases the lease, committing its staged changes, or discarding them
    /// when `rollback` is set. A lease the server no longer knows
    /// (`lease_required`) counts as already released.
    pub async fn release(&self, lease: &LeaseRef, rollback: bool) -> Result<ReleaseResponse, ClientError> {
        let req = ReleaseRequest {
            namespace: non_empty(&lease.namespace),
            key: Some(lease.key.clone()),
            lease_id: Some(lease.lease_id.clone()),
            txn_id: non_empty(&lease.txn_id),
            rollback: Some(rollback),
        };
        match self
            .send(&self.lease_call(Method::POST, "/v1/release", String::new(), lease, false, &req)?)
            .await
        {
            Ok(answer) => decode(&answer, "release"),
            Err(err) if err.code() == Some("lease_required") => Ok(ReleaseResponse { released: true }),
            Err(err) => Err(err),
        }
    }

    /// Reads the state as the lease holder sees it (its own staged changes
    /// included); `None` when there is no state.
    pub async fn get(&self, lease: &LeaseRef) -> Result<Option<StateDoc>, ClientError> {
        let q = key_query(&lease.namespace, &lease.key, &[]);
        let call = Call {
            method: Method::POST,
            path: "/v1/get",
            query: q,
            headers: lease_headers(lease, true)?,
            body: None,
            timeout: self.inner.timeout,
        };
        state_doc(self.send(&call).await?)
    }

    /// Reads the committed state without a lease; `None` when there is none.
    pub async fn get_public(&self, namespace: &str, key: &str) -> Result<Option<StateDoc>, ClientError> {
        let call = Call {
            method: Method::POST,
            path: "/v1/get",
            query: key_query(namespace, key, &[("public", "1")]),
            headers: Vec::new(),
            body: None,
            timeout: self.inner.timeout,
        };
        state_doc(self.send(&call).await?)
    }

    /// Stages `body` (a JSON document) as the key's new state under the lease.
    pub async fn update(
        &self,
        lease: &LeaseRef,
        body: Bytes,
        cond: &Conditions,
    ) -> Result<UpdateResponse, ClientError> {
        Ok(self.update_meta(lease, body, cond).await?.0)
    }

    pub(crate) async fn update_meta(
        &self,
        lease: &LeaseRef,
        body: Bytes,
        cond: &Conditions,
    ) -> Result<(UpdateResponse, Meta), ClientError> {
        let mut call = self.state_call("/v1/update", lease, cond)?;
        call.body = Some(body);
        let answer = self.send(&call).await?;
        Ok((decode(&answer, "update")?, Meta::from_headers(&answer.headers)?))
    }

    /// Like [`Client::update`], streaming the document from `body` with
    /// chunked encoding instead of holding it in memory. The body can be
    /// read only once, so the request goes to the current endpoint without
    /// failover; a failing reader surfaces as [`ClientError::Io`].
    pub async fn update_reader<R: tokio::io::AsyncRead + Send + Unpin + 'static>(
        &self,
        lease: &LeaseRef,
        body: R,
        cond: &Conditions,
    ) -> Result<UpdateResponse, ClientError> {
        let mut call = self.state_call("/v1/update", lease, cond)?;
        call.headers
            .push((http::header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
        let answer = self.send_streamed(&call, body::streamed(body)).await?;
        decode(&answer, "update")
    }

    /// Stages deletion of the key's state under the lease.
    pub async fn remove(&self, lease: &LeaseRef, cond: &Conditions) -> Result<RemoveResponse, ClientError> {
        Ok(self.remove_meta(lease, cond).await?.0)
    }

    pub(crate) async fn remove_meta(
        &self,
        lease: &LeaseRef,
        cond: &Conditions,
    ) -> Result<(RemoveResponse, Meta), ClientError> {
        let answer = self.send(&self.state_call("/v1/remove", lease, cond)?).await?;
        Ok((decode(&answer, "remove")?, Meta::from_headers(&answer.headers)?))
    }

    /// The key's committed metadata (holder, version, ETag) without its state.
    pub async fn describe(&self, namespace: &str, key: &str) -> Result<DescribeResponse, ClientError> {
        let call = Call {
            method: Method::GET,
            path: "/v1/describe",
            query: key_query(namespace, key, &[]),
            headers: Vec::new(),
            body: None,
            timeout: self.inner.timeout,
        };
        decode(&self.send(&call).await?, "describe")
    }

    /// Stages the key's `query_hidden` attribute under the lease, optionally
    /// only if the state is still at `if_version`.
    pub async fn metadata(
        &self,
        lease: &LeaseRef,
        query_hidden: bool,
        if_version: Option<i64>,
    ) -> Result<MetadataResponse, ClientError> {
        let cond = Conditions {
            if_version,
            if_etag: None,
        };
        let mut call = self.state_call("/v1/metadata", lease, &cond)?;
        call.body = Some(to_json(&MetadataRequest {
            query_hidden: Some(query_hidden),
        })?);
        decode(&self.send(&call).await?, "metadata")
    }

    /// Succeeds when the server process is up (`GET /healthz`).
    pub async fn healthz(&self) -> Result<(), ClientError> {
        self.probe("/healthz").await
    }

    /// Succeeds when the server is ready to serve requests (`GET /readyz`).
    pub async fn readyz(&self) -> Result<(), ClientError> {
        self.probe("/readyz").await
    }

    async fn probe(&self, path: &'static str) -> Result<(), ClientError> {
        let call = Call {
            method: Method::GET,
            path,
            query: String::new(),
            headers: Vec::new(),
            body: None,
            timeout: self.inner.timeout,
        };
        self.send(&call).await.map(|_| ())
    }

    fn lease_call<T: Serialize>(
        &self,
        method: Method,
        path: &'static str,
        query: String,
        lease: &LeaseRef,
        with_lease_id: bool,
        body: &T,
    ) -> Result<Call, ClientError> {
        Ok(Call {
            method,
            path,
            query,
            headers: lease_headers(lease, with_lease_id)?,
            body: Some(to_json(body)?),
            timeout: self.inner.timeout,
        })
    }

    /// A lease-guarded call on the key's state (update, remove, metadata).
    fn state_call(&self, path: &'static str, lease: &LeaseRef, cond: &Conditions) -> Result<Call, ClientError> {
        let mut headers = lease_headers(lease, true)?;
        if let Some(version) = cond.if_version {
            headers.push((HeaderName::from_static(header::IF_VERSION), HeaderValue::from(version)));
        }
        if let Some(etag) = &cond.if_etag {
            headers.push((
                HeaderName::from_static(header::IF_STATE_ETAG),
                header_value(etag, "ETag")?,
            ));
        }
        Ok(Call {
            method: Method::POST,
            path,
            query: key_query(&lease.namespace, &lease.key, &[]),
            headers,
            body: None,
            timeout: self.inner.timeout,
        })
    }
}

fn lease_headers(lease: &LeaseRef, with_lease_id: bool) -> Result<Vec<(HeaderName, HeaderValue)>, ClientError> {
    let mut headers = vec![(
        HeaderName::from_static(header::FENCING_TOKEN),
        HeaderValue::from(lease.fencing_token),
    )];
    if with_lease_id {
        headers.push((
            HeaderName::from_static(header::LEASE_ID),
            header_value(&lease.lease_id, "lease id")?,
        ));
    }
    if !lease.txn_id.is_empty() {
        headers.push((
            HeaderName::from_static(header::TXN_ID),
            header_value(&lease.txn_id, "txn id")?,
        ));
    }
    Ok(headers)
}

fn header_value(value: &str, what: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(value)
        .map_err(|_| ClientError::InvalidInput(format!("{what} {value:?} cannot be sent as an HTTP header")))
}

fn key_query(namespace: &str, key: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![("key", key)];
    if !namespace.is_empty() {
        pairs.push(("namespace", namespace));
    }
    pairs.extend_from_slice(extra);
    query(&pairs)
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

fn to_json<T: Serialize>(value: &T) -> Result<Bytes, ClientError> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| ClientError::InvalidInput(format!("cannot encode request as JSON: {e}")))
}

fn decode<T: DeserializeOwned>(answer: &Answer, what: &str) -> Result<T, ClientError> {
    serde_json::from_slice(&answer.body).map_err(|e| ClientError::Decode(format!("{what} answer: {e}")))
}

fn int_header(headers: &HeaderMap, name: &str) -> Result<Option<i64>, ClientError> {
    header_str(headers, name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| ClientError::Decode(format!("header {name}: {v:?} is not an integer")))
        })
        .transpose()
}

fn lease_from(answer: &Answer) -> Result<Lease, ClientError> {
    let response: AcquireResponse = decode(answer, "acquire")?;
    let fencing_token = int_header(&answer.headers, header::FENCING_TOKEN)?.unwrap_or(response.fencing_token);
    Ok(Lease {
        response,
        fencing_token,
    })
}

fn state_doc(answer: Answer) -> Result<Option<StateDoc>, ClientError> {
    if answer.status == StatusCode::NO_CONTENT {
        return Ok(None);
    }
    let meta = Meta::from_headers(&answer.headers)?;
    Ok(Some(StateDoc {
        body: answer.body,
        etag: meta.etag.unwrap_or_default(),
        version: meta.version.unwrap_or(0),
        fencing_token: meta.fencing_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: StatusCode, headers: &[(&'static str, &'static str)], body: &'static [u8]) -> Answer {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, HeaderValue::from_static(value));
        }
        Answer {
            status,
            headers: map,
            body: Bytes::from_static(body),
        }
    }

    const ACQUIRED: &[u8] = br#"{"namespace":"default","lease_id":"l1","txn_id":"t1","key":"k","owner":"o","expires_at_unix":10,"version":0,"fencing_token":3}"#;

    #[test]
    fn fencing_token_header_wins_over_body() {
        let lease = lease_from(&answer(StatusCode::OK, &[("x-fencing-token", "7")], ACQUIRED)).expect("test setup");
        assert_eq!(lease.fencing_token, 7);
        let lease = lease_from(&answer(StatusCode::OK, &[], ACQUIRED)).expect("test setup");
        assert_eq!(lease.fencing_token, 3);
        let r = lease.lease_ref();
        assert_eq!(
            (
                r.namespace.as_str(),
                r.key.as_str(),
                r.lease_id.as_str(),
                r.txn_id.as_str()
            ),
            ("default", "k", "l1", "t1")
        );
    }

    #[test]
    fn malformed_answers_are_decode_errors() {
        assert!(matches!(
            lease_from(&answer(StatusCode::OK, &[], b"{}")),
            Err(ClientError::Decode(_))
        ));
        let bad = answer(StatusCode::OK, &[("x-fencing-token", "seven")], ACQUIRED);
        assert!(matches!(lease_from(&bad), Err(ClientError::Decode(m)) if m.contains("x-fencing-token")));
    }

    #[test]
    fn state_docs_read_their_headers() {
        assert_eq!(
            state_doc(answer(StatusCode::NO_CONTENT, &[], b"")).expect("test setup"),
            None
        );
        let doc = state_doc(answer(
            StatusCode::OK,
            &[("etag", "\"abc\""), ("x-key-version", "4"), ("x-fencing-token", "2")],
            b"{\"a\":1}",
        ))
        .expect("test setup")
        .expect("test setup");
        assert_eq!(doc.etag, "abc");
        assert_eq!(doc.version, 4);
        assert_eq!(doc.fencing_token, Some(2));
        assert_eq!(doc.body.as_ref(), b"{\"a\":1}");
    }

    #[test]
    fn lease_headers_carry_identity() {
        let lease = LeaseRef {
            namespace: String::new(),
            key: "k".into(),
            lease_id: "l".into(),
            txn_id: "t".into(),
            fencing_token: 9,
        };
        let headers = lease_headers(&lease, true).expect("test setup");
        let get = |n: &str| {
            headers
                .iter()
                .find(|(h, _)| h == n)
                .map(|(_, v)| v.to_str().expect("test setup").to_owned())
        };
        assert_eq!(get("x-fencing-token").as_deref(), Some("9"));
        assert_eq!(get("x-lease-id").as_deref(), Some("l"));
        assert_eq!(get("x-txn-id").as_deref(), Some("t"));
        let bad = LeaseRef {
            lease_id: "a\nb".into(),
            ..lease
        };
        assert!(matches!(lease_headers(&bad, true), Err(ClientError::InvalidInput(_))));
    }

    #[test]
    fn key_query_skips_empty_namespace() {
        assert_eq!(key_query("", "a/b", &[]), "key=a%2Fb");
        assert_eq!(key_query("ns", "k", &[("public", "1")]), "key=k&namespace=ns&public=1");
    }
}
