//! Benchmark placeholder
