// wink-nlp declares its utilities' types for the extensionless names; ESM imports them by file name.
declare module 'wink-nlp/utilities/bm25-vectorizer.js' {
  import bm25Vectorizer from 'wink-nlp/utilities/bm25-vectorizer';
  export default bm25Vectorizer;
}
