//! The RESP layer and command dispatch, without sockets or storage: parsing single and
//! pipelined requests, encoding common replies in RESP2/RESP3, and looking up + executing
//! GET/SET/INCR against an in-memory keyspace. Run: `cargo bench --bench resp`.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;
use tessera::cmd::{execute, lookup, Ctx, Keyspace};
use tessera::resp::{parse_requests, Limits, Protocol, Reply};

fn set_request(i: usize) -> Vec<u8> {
    let key = format!("key:{i:012}");
    let value = "x".repeat(128);
    format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
        key.len(),
        value.len()
    )
    .into_bytes()
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("resp_parse");
    g.measurement_time(Duration::from_secs(3));
    let limits = Limits::default();
    for n in [1usize, 16] {
        let input: Vec<u8> = (0..n).flat_map(set_request).collect();
        g.throughput(Throughput::Elements(n as u64));
        // As a session parses what one read brought: the whole pipeline in one pass.
        g.bench_function(BenchmarkId::new("set_pipeline", n), |b| {
            b.iter(|| {
                let mut buf = BytesMut::from(&input[..]);
                let mut out = Vec::with_capacity(n);
                assert!(parse_requests(&mut buf, &limits, true, n, &mut out).is_none());
                black_box(out);
            })
        });
    }
    let inline = b"GET key:000000000001\r\n".repeat(16);
    g.throughput(Throughput::Elements(16));
    g.bench_function("inline_get_x16", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&inline[..]);
            let mut out = Vec::with_capacity(16);
            assert!(parse_requests(&mut buf, &limits, true, 16, &mut out).is_none());
            black_box(out);
        })
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("resp_encode");
    g.measurement_time(Duration::from_secs(3));
    let bulk = Reply::bulk(vec![b'x'; 128]);
    let array = Reply::Array((0..10).map(|_| bulk.clone()).collect());
    let map = Reply::Map(vec![(Reply::bulk("maxclients"), Reply::bulk("10000")); 4]);
    for (name, reply) in [
        ("ok", Reply::ok()),
        ("bulk128", bulk),
        ("mget10", array),
        ("map4", map),
    ] {
        for proto in [Protocol::Resp2, Protocol::Resp3] {
            g.bench_function(BenchmarkId::new(name, format!("{proto:?}")), |b| {
                let mut out = BytesMut::with_capacity(4096);
                b.iter(|| {
                    out.clear();
                    reply.encode(proto, &mut out);
                    black_box(&out);
                })
            });
        }
    }
    g.finish();
}

#[derive(Default)]
struct MemKeyspace(HashMap<Vec<u8>, Vec<u8>>);

impl Keyspace for MemKeyspace {
    fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>, String> {
        Ok(self.0.get(key).map(|v| Bytes::copy_from_slice(v)))
    }
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.0.insert(key.to_vec(), value.to_vec());
    }
    fn delete(&mut self, key: &[u8]) {
        self.0.remove(key);
    }
}

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch");
    g.measurement_time(Duration::from_secs(3));
    let mut kv = MemKeyspace::default();
    let cases: [(&str, Vec<Bytes>); 4] = [
        (
            "set",
            vec!["SET".into(), "key:1".into(), Bytes::from(vec![b'x'; 128])],
        ),
        (
            "set_ex_nx",
            vec![
                "set".into(),
                "key:2".into(),
                "v".into(),
                "EX".into(),
                "100".into(),
                "NX".into(),
            ],
        ),
        ("get", vec!["GET".into(), "key:1".into()]),
        ("incr", vec!["INCR".into(), "counter".into()]),
    ];
    for (name, args) in cases {
        g.bench_function(name, |b| {
            b.iter(|| {
                let spec = lookup(&args[0]).unwrap();
                let mut ctx = Ctx::new(&mut kv, 1);
                black_box(execute(spec.cmd, &mut ctx, &args));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse, encode, dispatch);
criterion_main!(benches);
