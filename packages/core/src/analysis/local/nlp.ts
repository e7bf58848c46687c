/**
 * The NLP models, loaded once per thread on first use: wink-nlp with its English lite model
 * (sentences, tokens, POS, negation-aware sentiment, DATE/MONEY/... entities, the BM25
 * vectorizer) and compromise (people, places, organisations). Both ship their models in the
 * package, so the local analyzer needs no network and no downloads.
 */
import nlpCompromise from 'compromise';
import model from 'wink-eng-lite-web-model';
import winkNLP from 'wink-nlp';
import type { ItsHelpers, WinkMethods } from 'wink-nlp';
// wink's utilities are CommonJS files without an exports map: ESM imports them by file name (a
// static import, so bundlers include it), while the types are declared for the extensionless name
// (wink-utilities.d.ts).
import bm25VectorizerCjs from 'wink-nlp/utilities/bm25-vectorizer.js';

/** BM25 vectorizer factory of wink-nlp. */
export const bm25Vectorizer = bm25VectorizerCjs;

let wink: WinkMethods | undefined;

/** The wink-nlp instance of this thread (the model is loaded on the first call only). */
export function winkNlp(): WinkMethods {
  wink ??= winkNLP(model);
  return wink;
}

/** wink's `its` helpers (the same object the BM25 vectorizer checks its arguments against). */
export function its(): ItsHelpers {
  return winkNlp().its;
}

/** compromise's parser (its model is part of the module). */
export const compromise = nlpCompromise;
