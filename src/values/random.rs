//! Seeded random input for the scanners' robustness tests.

/// `count` strings of up to `max_pieces` of `pieces` in random order (seeded,
/// so a failure repeats): input for the scanners' robustness tests.
pub fn random_strings(pieces: &[&str], seed: u64, count: usize, max_pieces: usize) -> Vec<String> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let n = rng.gen_range(0..max_pieces);
            (0..n)
                .map(|_| pieces[rng.gen_range(0..pieces.len())])
                .collect()
        })
        .collect()
}
