//! Benchmarks for courier live in `benches/`; run them with
//! `cargo bench -p courier-benches --bench record_batch`. Figures and the machine they were
//! taken on are in `docs/BENCHMARKS.md`.
