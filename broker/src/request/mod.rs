//! A request frame's bytes into a typed request: header, bounds check, body.
//!
//! This layer works on bytes only (no I/O, no broker state), so it is what the fuzz target
//! `request_frame` drives and what [`crate::connection`] calls for every frame it reads. The body
//! is decoded by the `kafka-protocol` crate, but only after [`bounds`] has walked it and found
//! every count and length within the frame: see that module for the crate behaviour it guards
//! against.

mod bounds;
#[rustfmt::skip] // generated; `--check` compares it byte for byte
mod layouts;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

pub use bounds::BoundsError;

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    /// The API it calls.
    pub api_key: ApiKey,
    /// The version the client used.
    pub version: i16,
    /// The client's correlation id, echoed in the response.
    pub correlation_id: i32,
    /// The request header (client id, tagged fields).
    pub header: RequestHeader,
    /// The body.
    pub body: RequestKind,
}

/// Why a frame is not a request kbroker can serve. Each message names the API and version where
/// they are known, since it ends up in the broker's log beside the peer's address.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Fewer bytes than the fixed part of a header.
    #[error("request of {0} bytes is too short for a header")]
    TooShort(usize),
    /// An API key Kafka does not define.
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    /// An API kbroker does not implement.
    #[error("API {api:?} (key {key}) is not supported")]
    UnsupportedApi {
        /// The API.
        api: ApiKey,
        /// Its key on the wire.
        key: i16,
    },
    /// ApiVersions in a version kbroker does not speak: answered with a v0 error response
    /// listing the ranges, as Kafka does, so the client can retry.
    #[error("ApiVersions v{version} is newer than kbroker speaks")]
    ApiVersionsTooNew {
        /// The version asked for.
        version: i16,
        /// The client's correlation id, for the answer.
        correlation_id: i32,
    },
    /// Produce v0-v2 (message format v0/v1).
    #[error(
        "Produce v{0} carries message format v0/v1, which kbroker does not store; \
         use a client that writes record batches (Kafka 0.11+ clients, Produce v3+)"
    )]
    LegacyProduce(i16),
    /// A version outside what kbroker serves for this API.
    #[error("{api:?} v{version} is not supported (supported: v{min}-v{max})")]
    UnsupportedVersion {
        /// The API.
        api: ApiKey,
        /// The version asked for.
        version: i16,
        /// Lowest version served.
        min: i16,
        /// Highest version served.
        max: i16,
    },
    /// The header does not decode.
    #[error("malformed {api:?} v{version} header: {reason}")]
    Header {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// The decoder's complaint.
        reason: String,
    },
    /// A count or length in the body claims more than the frame holds.
    #[error("malformed {api:?} v{version} request: {source}")]
    Bounds {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// The field and what it claimed.
        source: BoundsError,
    },
    /// The body does not decode.
    #[error("malformed {api:?} v{version} request: {reason}")]
    Body {
        /// The API.
        api: ApiKey,
        /// The version.
        version: i16,
        /// The decoder's complaint.
        reason: String,
    },
}

/// Decodes one request frame (the bytes after the size prefix). `served` gives the version
/// range kbroker handles for an API, `None` for APIs it does not implement.
pub fn decode(
    mut frame: Bytes,
    served: impl Fn(ApiKey) -> Option<(i16, i16)>,
) -> Result<Request, RequestError> {
    if frame.len() < 8 {
        return Err(RequestError::TooShort(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(key).map_err(|_| RequestError::UnknownApi(key))?;
    let (min, max) = served(api).ok_or(RequestError::UnsupportedApi { api, key })?;
    if !(min..=max).contains(&version) {
        return Err(match api {
            ApiKey::ApiVersions => RequestError::ApiVersionsTooNew {
                version,
                correlation_id,
            },
            ApiKey::Produce if (0..min).contains(&version) => RequestError::LegacyProduce(version),
            _ => RequestError::UnsupportedVersion {
                api,
                version,
                min,
                max,
            },
        });
    }
    let header =
        RequestHeader::decode(&mut frame, api.request_header_version(version)).map_err(|e| {
            RequestError::Header {
                api,
                version,
                reason: e.to_string(),
            }
        })?;
    // Every served API has a layout (a unit test holds the two tables together); an API without
    // one is refused rather than decoded unchecked.
    let layout = layouts::request(api).ok_or(RequestError::UnsupportedApi { api, key })?;
    bounds::check(layout, version, &frame).map_err(|source| RequestError::Bounds {
        api,
        version,
        source,
    })?;
    let body = RequestKind::decode(api, &mut frame, version).map_err(|e| RequestError::Body {
        api,
        version,
        reason: e.to_string(),
    })?;
    Ok(Request {
        api_key: api,
        version,
        correlation_id,
        header,
        body,
    })
}

#[cfg(test)]
mod tests;
