/**
 * Sentence centrality, TextRank-style: sentences are BM25-weighted bags of word stems (wink-nlp's
 * BM25 vectorizer), edges are their cosine similarities, and a
 * sentence's score is its PageRank on that weighted graph. A central sentence shares vocabulary
 * with many other sentences, which is what an extractive summary should pick.
 */
import type { Bow } from 'wink-nlp';
import { bm25Vectorizer, its } from './nlp.js';

const DAMPING = 0.85;
const MAX_ITERATIONS = 50;
const EPSILON = 1e-6;

/** Centrality scores of a set of texts, plus their pairwise similarity. */
export interface Centrality {
  /** PageRank per text, scaled so that the most central text scores 1 (all 0 when no edges). */
  scores: number[];
  /** Cosine similarity (0..1) of two texts' BM25 vectors. */
  similarity(a: number, b: number): number;
}

/**
 * Ranks texts given as lists of terms (e.g. stems of content words). Cost is quadratic in the
 * number of texts; callers bound it.
 */
export function centrality(terms: readonly string[][]): Centrality {
  const n = terms.length;
  const sim = new Float64Array(n * n);
  if (n > 0) {
    const vectorizer = bm25Vectorizer({ k: 1, k1: 1.2, b: 0.75, norm: 'l2' });
    for (const t of terms) vectorizer.learn(t);
    const bows = vectorizer.out(its().docBOWArray) as unknown as Bow[];
    // The bags are L2-normalised, so cosine similarity is their dot product. Summing it term by
    // term over each term's postings touches only pairs that share a term: wink's pairwise
    // similarity.bow.cosine allocates two objects per pair and took ~200 ms for 250 sentences.
    const postings = new Map<string, Array<[number, number]>>();
    bows.forEach((bow, i) => {
      for (const [term, weight] of Object.entries(bow)) {
        const list = postings.get(term);
        if (list) list.push([i, weight]);
        else postings.set(term, [[i, weight]]);
      }
    });
    for (const list of postings.values()) {
      for (let x = 0; x < list.length; x += 1) {
        const [i, wi] = list[x] as [number, number];
        for (let y = x + 1; y < list.length; y += 1) {
          const [j, wj] = list[y] as [number, number];
          sim[i * n + j] = (sim[i * n + j] as number) + wi * wj;
        }
      }
    }
    for (let i = 0; i < n; i += 1) {
      for (let j = i + 1; j < n; j += 1) {
        const s = Math.min(1, sim[i * n + j] as number);
        sim[i * n + j] = s;
        sim[j * n + i] = s;
      }
    }
  }

  const outWeight = new Float64Array(n);
  for (let i = 0; i < n; i += 1) {
    let w = 0;
    for (let j = 0; j < n; j += 1) w += sim[i * n + j] as number;
    outWeight[i] = w;
  }

  let rank = new Float64Array(n).fill(n > 0 ? 1 / n : 0);
  for (let iter = 0; iter < MAX_ITERATIONS; iter += 1) {
    const next = new Float64Array(n).fill((1 - DAMPING) / Math.max(1, n));
    for (let j = 0; j < n; j += 1) {
      const wj = outWeight[j] as number;
      if (wj === 0) continue;
      const share = (DAMPING * (rank[j] as number)) / wj;
      for (let i = 0; i < n; i += 1) {
        const s = sim[j * n + i] as number;
        if (s !== 0) next[i] = (next[i] as number) + share * s;
      }
    }
    let delta = 0;
    for (let i = 0; i < n; i += 1) delta += Math.abs((next[i] as number) - (rank[i] as number));
    rank = next;
    if (delta < EPSILON) break;
  }

  // Isolated texts (no shared vocabulary) keep only the teleport share: score them 0.
  const scores = Array.from(rank, (r, i) => ((outWeight[i] as number) === 0 ? 0 : r));
  const max = Math.max(0, ...scores);
  return {
    scores: scores.map((s) => (max > 0 ? s / max : 0)),
    similarity: (a, b) => (a === b ? 1 : (sim[a * n + b] ?? 0)),
  };
}
