//! The bounds check against the decoder it guards: random well-formed bodies made from each
//! served layout must decode whole with the crate, and bodies that lie about a count must be
//! refused before the crate sees them.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, JoinGroupRequest, MetadataRequest, RequestHeader, RequestKind,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::bounds::{self, Layout, Wire};
use super::{decode, layouts, RequestError};
use crate::handlers;

/// Writes a random well-formed value of `wire` for `version`.
fn gen_wire(rng: &mut StdRng, wire: Wire, version: i16, out: &mut BytesMut) {
    match wire {
        // Booleans and int8 fields: 0 or 1 keeps every decoder happy.
        Wire::Fixed(1) => out.put_u8(rng.random_range(0..2)),
        Wire::Fixed(n) => {
            for _ in 0..n {
                out.put_u8(rng.random());
            }
        }
        Wire::String => {
            let s = gen_text(rng);
            out.put_i16(s.len() as i16);
            out.put_slice(&s);
        }
        Wire::CompactString | Wire::CompactBytes => {
            let s = gen_text(rng);
            put_uvarint(out, s.len() as u32 + 1);
            out.put_slice(&s);
        }
        Wire::Bytes => {
            let s = gen_text(rng);
            out.put_i32(s.len() as i32);
            out.put_slice(&s);
        }
        Wire::Array(elem) => {
            let n = rng.random_range(0..3);
            out.put_i32(n);
            for _ in 0..n {
                gen_wire(rng, elem.wire(), version, out);
            }
        }
        Wire::CompactArray(elem) => {
            let n = rng.random_range(0..3);
            put_uvarint(out, n + 1);
            for _ in 0..n {
                gen_wire(rng, elem.wire(), version, out);
            }
        }
        Wire::Struct(layout) => gen_layout(rng, layout, version, out),
        Wire::OptionStruct(layout) => {
            if rng.random_range(0..2) == 1 {
                out.put_i8(1);
                gen_layout(rng, layout, version, out);
            } else {
                out.put_i8(-1);
            }
        }
    }
}

fn gen_layout(rng: &mut StdRng, layout: &'static Layout, version: i16, out: &mut BytesMut) {
    for field in layout.fields {
        if let Some(arm) = field.arms.iter().find(|a| a.covers(version)) {
            gen_wire(rng, arm.wire(), version, out);
        }
    }
    let Some((min, max)) = layout.tagged else {
        return;
    };
    if !(min..=max).contains(&version) {
        return;
    }
    // Known tags valid in this version (in tag order), then one unknown tag.
    let known: Vec<_> = layout
        .tags
        .iter()
        .filter(|t| t.covers(version) && rng.random_bool(0.7))
        .collect();
    let unknown = rng.random_bool(0.5);
    put_uvarint(out, known.len() as u32 + u32::from(unknown));
    for t in known {
        let mut value = BytesMut::new();
        gen_wire(rng, t.wire(), version, &mut value);
        put_uvarint(out, t.tag());
        put_uvarint(out, value.len() as u32);
        out.put_slice(&value);
    }
    if unknown {
        put_uvarint(out, 1000);
        put_uvarint(out, 3);
        out.put_slice(b"xyz");
    }
}

fn gen_text(rng: &mut StdRng) -> Vec<u8> {
    let n = rng.random_range(0..6);
    (0..n).map(|_| rng.random_range(b'a'..=b'z')).collect()
}

fn put_uvarint(out: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

/// A frame for `api` v`version` with this body.
fn frame(api: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(StrBytes::from_static_str("bounds-test"));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    buf.put_slice(body);
    buf.freeze()
}

#[test]
fn every_served_api_has_a_layout() {
    for &(api, _, _) in handlers::SUPPORTED {
        assert!(layouts::request(api).is_some(), "{api:?} has no layout");
    }
}

#[test]
fn random_well_formed_bodies_pass_the_check_and_decode_whole() {
    let mut rng = StdRng::seed_from_u64(0x6b62);
    for &(api, min, max) in handlers::SUPPORTED {
        let layout = layouts::request(api).unwrap();
        for version in min..=max {
            for round in 0..40 {
                let mut body = BytesMut::new();
                gen_layout(&mut rng, layout, version, &mut body);
                let consumed = bounds::consumed(layout, version, &body).unwrap_or_else(|e| {
                    panic!("{api:?} v{version} round {round}: check refused a good body: {e}")
                });
                assert_eq!(consumed, body.len(), "{api:?} v{version}: check left bytes");
                let mut bytes = body.clone().freeze();
                RequestKind::decode(api, &mut bytes, version).unwrap_or_else(|e| {
                    panic!("{api:?} v{version} round {round}: decoder refused the body the layout made ({e}): {body:?}")
                });
                assert_eq!(
                    bytes.len(),
                    0,
                    "{api:?} v{version} round {round}: the decoder read another layout"
                );
            }
        }
    }
}

#[test]
fn what_the_encoder_writes_passes_the_check_whole() {
    let mut metadata = MetadataRequest::default();
    metadata.topics = Some(vec![Default::default(), Default::default()]);
    let mut join = JoinGroupRequest::default();
    join.protocols = vec![Default::default()];
    let requests = [
        (ApiKey::Metadata, RequestKind::Metadata(metadata)),
        (ApiKey::JoinGroup, RequestKind::JoinGroup(join)),
    ];
    for (api, request) in requests {
        let (min, max) = handlers::supported_versions(api).unwrap();
        for version in min..=max {
            let mut body = BytesMut::new();
            request.encode(&mut body, version).unwrap();
            let layout = layouts::request(api).unwrap();
            assert_eq!(
                bounds::consumed(layout, version, &body),
                Ok(body.len()),
                "{api:?} v{version}"
            );
        }
    }
}

/// The request that aborted kbroker: a Metadata v12 body claiming 2^31-1 topics in 13 bytes.
#[test]
fn an_array_count_larger_than_the_frame_is_refused_by_name() {
    let mut body = BytesMut::new();
    put_uvarint(&mut body, u32::MAX); // compact array: count + 1
    body.put_slice(&[0; 12]);
    let err = decode(
        frame(ApiKey::Metadata, 12, &body),
        handlers::supported_versions,
    )
    .unwrap_err();
    let RequestError::Bounds { api, source, .. } = &err else {
        panic!("expected a bounds error, got {err}");
    };
    assert_eq!(*api, ApiKey::Metadata);
    assert_eq!(source.field, "topics");
    assert!(
        err.to_string().contains("array count of 4294967294"),
        "{err}"
    );

    // Classic encoding (JoinGroup v5): the protocols array claims i32::MAX elements.
    let mut body = BytesMut::new();
    body.put_i16(5);
    body.put_slice(b"group");
    body.put_i32(30_000); // session timeout
    body.put_i32(30_000); // rebalance timeout
    body.put_i16(0); // member id: ""
    body.put_i16(-1); // group instance id: null
    body.put_i16(8);
    body.put_slice(b"consumer");
    body.put_i32(i32::MAX);
    let err = decode(
        frame(ApiKey::JoinGroup, 5, &body),
        handlers::supported_versions,
    )
    .unwrap_err();
    assert!(
        matches!(&err, RequestError::Bounds { source, .. } if source.field == "protocols"),
        "{err}"
    );
}

#[test]
fn a_lie_deep_inside_names_its_path() {
    // Produce v9: one topic, one partition whose records claim 1 GB.
    let mut body = BytesMut::new();
    put_uvarint(&mut body, 1); // transactional id: null
    body.put_i16(-1);
    body.put_i32(30_000);
    put_uvarint(&mut body, 2); // one topic
    put_uvarint(&mut body, 2);
    body.put_slice(b"t");
    put_uvarint(&mut body, 3); // two partitions
    body.put_i32(0);
    put_uvarint(&mut body, 1); // records: null
    put_uvarint(&mut body, 0); // no tags
    body.put_i32(1);
    put_uvarint(&mut body, 1 << 30);
    let err = decode(
        frame(ApiKey::Produce, 9, &body),
        handlers::supported_versions,
    )
    .unwrap_err();
    let RequestError::Bounds { source, .. } = &err else {
        panic!("expected a bounds error, got {err}");
    };
    assert_eq!(source.field, "topic_data[0].partition_data[1].records");
}

#[test]
fn tagged_fields_are_bounded_and_known_tags_read_in_place() {
    let layout = layouts::request(ApiKey::Fetch).unwrap();
    // A Fetch v12 body up to its tagged fields.
    let mut head = BytesMut::new();
    head.put_i32(-1); // replica id
    head.put_i32(500);
    head.put_i32(1);
    head.put_i32(1 << 20);
    head.put_u8(0);
    head.put_i32(0);
    head.put_i32(-1);
    put_uvarint(&mut head, 1); // topics: empty
    put_uvarint(&mut head, 1); // forgotten: empty
    put_uvarint(&mut head, 1); // rack: ""

    let mut huge_count = head.clone();
    put_uvarint(&mut huge_count, u32::MAX);
    let err = bounds::consumed(layout, 12, &huge_count).unwrap_err();
    assert!(err.problem.contains("tagged field count"), "{err}");

    // Tag 0 (cluster id) is decoded by its type whatever size it declares: a declared size of
    // 1 followed by a 3-byte compact string is one field, not a field and two stray bytes.
    let mut in_place = head.clone();
    put_uvarint(&mut in_place, 1);
    put_uvarint(&mut in_place, 0);
    put_uvarint(&mut in_place, 1);
    put_uvarint(&mut in_place, 3);
    in_place.put_slice(b"ab");
    assert_eq!(bounds::consumed(layout, 12, &in_place), Ok(in_place.len()));

    // Tag 1 (replica state) is only valid from v15: the decoder refuses it, so does the check.
    let mut early = head.clone();
    put_uvarint(&mut early, 1);
    put_uvarint(&mut early, 1);
    put_uvarint(&mut early, 12);
    early.put_slice(&[0; 12]);
    let err = bounds::consumed(layout, 12, &early).unwrap_err();
    assert!(err.problem.contains("tag 1 is not valid"), "{err}");
}

#[test]
fn strings_and_negative_lengths_are_checked() {
    // DescribeGroups v4: one group name claiming 30,000 bytes.
    let mut body = BytesMut::new();
    body.put_i32(1);
    body.put_i16(30_000);
    body.put_slice(b"g");
    let err = decode(
        frame(ApiKey::DescribeGroups, 4, &body),
        handlers::supported_versions,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("groups[0]: string length of 30000"),
        "{err}"
    );

    let mut body = BytesMut::new();
    body.put_i32(-5);
    let err = decode(
        frame(ApiKey::DescribeGroups, 4, &body),
        handlers::supported_versions,
    )
    .unwrap_err();
    assert!(err.to_string().contains("negative array count -5"), "{err}");
}

#[test]
fn frames_kbroker_does_not_serve_are_refused_before_decoding() {
    let served = handlers::supported_versions;
    assert!(matches!(
        decode(Bytes::from_static(&[0, 3, 0]), served),
        Err(RequestError::TooShort(3))
    ));
    assert!(matches!(
        decode(frame(ApiKey::ApiVersions, 99, &[]), served),
        Err(RequestError::ApiVersionsTooNew {
            correlation_id: 7,
            ..
        })
    ));
    assert!(matches!(
        decode(frame(ApiKey::Produce, 2, &[]), served),
        Err(RequestError::LegacyProduce(2))
    ));
    let mut unknown = BytesMut::new();
    unknown.put_i16(32_000);
    unknown.put_slice(&[0; 6]);
    assert!(matches!(
        decode(unknown.freeze(), served),
        Err(RequestError::UnknownApi(32_000))
    ));
}
