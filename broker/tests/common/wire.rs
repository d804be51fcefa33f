//! A minimal raw Kafka protocol client for tests that must send exact bytes: corrupt batches,
//! garbage frames, unsupported versions. Everything else in the tests goes through real clients.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// A blocking connection speaking raw frames.
pub struct Wire {
    pub stream: TcpStream,
    correlation: i32,
}

impl Wire {
    pub fn connect(addr: &str) -> Wire {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Wire {
            stream,
            correlation: 0,
        }
    }

    /// Sends `body` as `api` version `version` and returns the decoded response.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        let sent = self.send(api, version, body);
        let (correlation, resp) = self.receive(api, version);
        assert_eq!(correlation, sent);
        resp
    }

    /// Sends `body` as `api` version `version` without waiting for the answer; returns the
    /// request's correlation id.
    pub fn send<Req: Encodable>(&mut self, api: ApiKey, version: i16, body: &Req) -> i32 {
        self.correlation += 1;
        let frame = request_frame(api, version, self.correlation, "wire-test", body);
        self.send_frame(&frame);
        self.correlation
    }

    /// Reads the next response, decoded as `api` version `version`, with its correlation id.
    pub fn receive<Resp: Decodable>(&mut self, api: ApiKey, version: i16) -> (i32, Resp) {
        let mut resp = self.read_frame().expect("response frame");
        let h = ResponseHeader::decode(&mut resp, api.response_header_version(version)).unwrap();
        (h.correlation_id, Resp::decode(&mut resp, version).unwrap())
    }

    /// Writes a size-prefixed frame.
    pub fn send_frame(&mut self, body: &[u8]) {
        let mut out = Vec::with_capacity(body.len() + 4);
        out.put_i32(body.len() as i32);
        out.extend_from_slice(body);
        self.stream.write_all(&out).unwrap();
    }

    /// Writes raw bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one size-prefixed frame; `None` when the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let n = (&size[..]).get_i32() as usize;
        let mut body = vec![0u8; n];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    /// True when the broker has closed the connection (read returns EOF or reset).
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }
}

/// A request frame (header and body, without the size prefix) as a client would send it.
pub fn request_frame<Req: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &'static str,
    body: &Req,
) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str(client_id));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    buf.to_vec()
}
