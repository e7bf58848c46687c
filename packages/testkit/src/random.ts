/**
 * A small seeded PRNG (mulberry32), shared by the fake Gemini server (reproducible failure draws
 * and latencies) and the PDF generator (reproducible content). Test data only, never secrets.
 */

/** Returns a function yielding uniform numbers in [0, 1) from a 32-bit seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
