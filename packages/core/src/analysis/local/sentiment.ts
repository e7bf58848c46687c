/**
 * Chunk sentiment from wink-nlp's per-sentence sentiment (lexicon-based, negation-aware, in
 * [-1, 1]): the mean of the sentence scores weighted by sentence length in words.
 */
import type { Sentiment } from '../types.js';
import { sentimentLabel } from '../types.js';

/** A sentence's score counts as strongly positive (negative) at or beyond this magnitude. */
export const STRONG_SENTIMENT = 0.25;
/** `mixed` needs the weaker side to hold at least this share of the strongly polar weight... */
export const MIXED_MIN_SIDE_SHARE = 1 / 3;
/** ...and the strongly polar sentences to hold at least this share of all the text's weight. */
export const MIXED_MIN_POLAR_SHARE = 0.15;

/** One sentence's sentiment and its weight (length in words). */
export interface WeightedScore {
  score: number;
  weight: number;
}

/**
 * Aggregates sentence sentiment. The score is the length-weighted mean, rounded to 3 decimals.
 * The label is `mixed` when strongly positive and strongly negative sentences (|score| >=
 * {@link STRONG_SENTIMENT}) both carry substantial weight: the weaker side holds at least
 * {@link MIXED_MIN_SIDE_SHARE} of the strongly polar weight, and strongly polar sentences hold at
 * least {@link MIXED_MIN_POLAR_SHARE} of the total weight. Otherwise the label follows the score
 * ({@link sentimentLabel}).
 */
export function aggregateSentiment(items: readonly WeightedScore[]): Sentiment {
  let total = 0;
  let weighted = 0;
  let positive = 0;
  let negative = 0;
  for (const { score, weight } of items) {
    if (!(weight > 0) || !Number.isFinite(score)) continue;
    const s = Math.max(-1, Math.min(1, score));
    total += weight;
    weighted += s * weight;
    if (s >= STRONG_SENTIMENT) positive += weight;
    if (s <= -STRONG_SENTIMENT) negative += weight;
  }
  if (total === 0) return { label: 'neutral', score: 0 };
  // `|| 0` turns a rounded -0 into 0.
  const score = Math.round((weighted / total) * 1000) / 1000 || 0;
  const polar = positive + negative;
  const mixed =
    polar >= MIXED_MIN_POLAR_SHARE * total && Math.min(positive, negative) >= MIXED_MIN_SIDE_SHARE * polar;
  return { label: sentimentLabel(score, mixed), score };
}
