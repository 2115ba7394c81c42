//! Measures in-process validation against a table of N keys (default 1M):
//! a hit, a well-formed miss and a malformed key, next to the baseline of
//! SHA3-256 alone on a 40-byte key, measured in the same run.
//!
//! Usage: `validate-bench [KEYS] [ROUNDS]` (defaults 1000000 and 5). Build with `--release`.
//! Prints the median over rounds of the mean ns/op in each round.

use std::hint::black_box;
use std::time::Instant;

use keyledger_events::{
    Actor, ApiKey, Change, Commit, Event, EventId, KeyHash, KeyId, KeyName, RequestId,
};
use keyledger_projections::{Access, Projection, ValidationTable};
use time::OffsetDateTime;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let table = ValidationTable::new();
    let started = Instant::now();
    let mut sample = Vec::new();
    let at = OffsetDateTime::UNIX_EPOCH;
    let request_id: RequestId = "bench".parse()?;
    let name = KeyName::parse("bench")?;
    for i in 0..n {
        let key = ApiKey::generate()?;
        let mut random = [0u8; 10];
        random[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let key_id = KeyId::from_parts(1, random);
        let event = Event {
            event_id: EventId::from_parts(1, random),
            key_id,
            at,
            actor: Actor::Bootstrap,
            request_id: request_id.clone(),
            origin: keyledger_events::Origin::default(),
            change: Change::Created {
                name: name.clone(),
                prefix: key.prefix(),
                hash: key.hash(),
                read_only: i % 2 == 0,
                admin: false,
            },
        };
        table.apply(i as u64 + 1, &Commit::new(vec![event])?);
        if i % (n / 1000).max(1) == 0 {
            sample.push(key);
        }
    }
    table.mark_ready();
    println!(
        "validate bench: {n} keys loaded in {:.1} s; {rounds} rounds",
        started.elapsed().as_secs_f64()
    );
    let misses: Vec<ApiKey> = (0..sample.len())
        .map(|_| ApiKey::generate())
        .collect::<Result<_, _>>()?;
    let raw: Vec<&str> = sample.iter().map(ApiKey::expose_secret).collect();
    let miss: Vec<&str> = misses.iter().map(ApiKey::expose_secret).collect();
    let malformed: Vec<String> = raw.iter().map(|k| format!("{}x", &k[..39])).collect();
    let iters: u32 = 200_000;

    let measure = |f: &dyn Fn(usize)| {
        let mut per_round = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            for i in 0..iters as usize {
                f(i);
            }
            per_round.push(t.elapsed().as_secs_f64() * 1e9 / f64::from(iters));
        }
        per_round.sort_by(f64::total_cmp);
        per_round[rounds / 2]
    };
    let sha3 = measure(&|i| {
        black_box(KeyHash::of(black_box(raw[i % raw.len()])));
    });
    let hit = measure(&|i| {
        black_box(table.validate(black_box(raw[i % raw.len()]), Access::Read)).ok();
    });
    let unknown = measure(&|i| {
        black_box(table.validate(black_box(miss[i % miss.len()]), Access::Read)).ok();
    });
    let bad = measure(&|i| {
        black_box(table.validate(black_box(&malformed[i % malformed.len()]), Access::Read)).ok();
    });
    println!("baseline SHA3-256 of a key:  {sha3:8.1} ns/op");
    println!(
        "validate, hit:               {hit:8.1} ns/op  ({:.2}x baseline)",
        hit / sha3
    );
    println!(
        "validate, unknown key:       {unknown:8.1} ns/op  ({:.2}x baseline)",
        unknown / sha3
    );
    println!(
        "validate, malformed key:     {bad:8.1} ns/op  ({:.2}x baseline)",
        bad / sha3
    );
    Ok(())
}
