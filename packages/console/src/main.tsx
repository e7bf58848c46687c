/**
 * docorch console: enter a key (kept in session storage), upload PDFs, watch each document's chunks
 * fill in live, read and download the result, list and filter documents, cancel a running one.
 * Routes live in the hash (#/documents/ID), so a reload keeps the view; the key never does.
 */
import { render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, ApiError, storedKey, storeKey, TERMINAL, type DocumentEvent, type DocumentResult, type DocumentView, type JobStatus } from './api.js';
import './styles.css';

const STATUS_TEXT: Record<JobStatus, string> = {
  queued: 'Queued',
  splitting: 'Splitting',
  processing: 'Analysing',
  assembling: 'Assembling',
  completed: 'Completed',
  completed_with_errors: 'Completed with errors',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

function useHashRoute(): [string, (to: string) => void] {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return [hash, (to) => (location.hash = to)];
}

function App() {
  const [key, setKey] = useState(storedKey());
  const [hash, go] = useHashRoute();
  const docId = /^#\/documents\/([A-Za-z0-9_-]+)$/.exec(hash)?.[1];
  if (!key) return <KeyForm onKey={(k) => (storeKey(k), setKey(k))} />;
  return (
    <>
      <header class="top">
        <a class="brand" href="#/">
          docorch <span>console</span>
        </a>
        <button type="button" class="link" onClick={() => (storeKey(null), setKey(null))}>
          Forget key
        </button>
      </header>
      <main id="main">
        {docId ? (
          <DocumentPage id={docId} onBack={() => go('#/')} />
        ) : (
          <>
            <Upload onUploaded={(id) => go(`#/documents/${id}`)} onBadKey={() => (storeKey(null), setKey(null))} />
            <DocumentList />
          </>
        )}
      </main>
    </>
  );
}

function KeyForm({ onKey }: { onKey: (key: string) => void }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  return (
    <main id="main" class="narrow">
      <h1>docorch console</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          storeKey(value.trim());
          try {
            await api.list();
            onKey(value.trim());
          } catch (err) {
            storeKey(null);
            setError(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
          }
        }}
      >
        <label for="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autocomplete="off" required value={value} onInput={(e) => setValue(e.currentTarget.value)} aria-describedby="key-help" />
        <p id="key-help" class="help">
          Kept in this tab's session storage only; closing the tab forgets it.
        </p>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
        <button type="submit">Open console</button>
      </form>
    </main>
  );
}

function Upload({ onUploaded, onBadKey }: { onUploaded: (id: string) => void; onBadKey: () => void }) {
  const [over, setOver] = useState(false);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [pages, setPages] = useState('');
  const [perChunk, setPerChunk] = useState('');
  const input = useRef<HTMLInputElement>(null);
  const send = async (files: FileList | null) => {
    const file = files?.[0];
    if (!file) return;
    setError(null);
    setBusy(file.name);
    try {
      const { id } = await api.upload(file, { mode: 'async', pages, pagesPerChunk: perChunk });
      onUploaded(id);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) onBadKey();
      setError(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err));
    } finally {
      setBusy(null);
    }
  };
  return (
    <section aria-labelledby="upload-title" class="card">
      <h1 id="upload-title">Analyse a PDF</h1>
      <div
        id="drop"
        class={`drop${over ? ' over' : ''}`}
        onDragOver={(e) => (e.preventDefault(), setOver(true))}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          void send(e.dataTransfer?.files ?? null);
        }}
      >
        <p>{busy ? `Uploading ${busy}…` : 'Drop a PDF here, or'}</p>
        <label class="button" for="file">
          Choose a file
        </label>
        <input id="file" ref={input} type="file" accept="application/pdf,.pdf" class="visually-hidden" onChange={(e) => void send(e.currentTarget.files)} />
      </div>
      <div class="options">
        <div>
          <label for="pages">Pages (optional)</label>
          <input id="pages" placeholder="e.g. 1-3,7" value={pages} onInput={(e) => setPages(e.currentTarget.value)} />
        </div>
        <div>
          <label for="per-chunk">Pages per chunk (optional)</label>
          <input id="per-chunk" inputMode="numeric" pattern="[0-9]*" value={perChunk} onInput={(e) => setPerChunk(e.currentTarget.value)} />
        </div>
      </div>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </section>
  );
}

function DocumentList() {
  const [docs, setDocs] = useState<DocumentView[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState('');
  const [text, setText] = useState('');
  useEffect(() => {
    let stop = false;
    const load = () =>
      api
        .list()
        .then((page) => !stop && setDocs(page.documents))
        .catch((err: unknown) => !stop && setError(String(err)));
    void load();
    const t = setInterval(load, 5_000);
    return () => ((stop = true), clearInterval(t));
  }, []);
  const shown = (docs ?? []).filter((d) => (!status || d.status === status) && d.filename.toLowerCase().includes(text.toLowerCase()));
  return (
    <section aria-labelledby="list-title" class="card">
      <h2 id="list-title">Documents</h2>
      <div class="options">
        <div>
          <label for="filter-status">Status</label>
          <select id="filter-status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            <option value="">All</option>
            {Object.entries(STATUS_TEXT).map(([v, t]) => (
              <option value={v}>{t}</option>
            ))}
          </select>
        </div>
        <div>
          <label for="filter-text">File name contains</label>
          <input id="filter-text" value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </div>
      </div>
      {error && <p class="error">{error}</p>}
      {docs === null ? (
        <p>Loading…</p>
      ) : shown.length === 0 ? (
        <p>No documents{docs.length > 0 ? ' match' : ' yet'}.</p>
      ) : (
        <table class="docs">
          <caption class="visually-hidden">Your documents, newest first</caption>
          <thead>
            <tr>
              <th scope="col">File</th>
              <th scope="col">Status</th>
              <th scope="col">Pages</th>
              <th scope="col">Uploaded</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((d) => (
              <tr>
                <td>
                  <a href={`#/documents/${d.id}`}>{d.filename}</a>
                </td>
                <td>
                  <span class={`badge s-${d.status}`}>{STATUS_TEXT[d.status]}</span> {TERMINAL.has(d.status) ? '' : `${d.progress.percent}%`}
                </td>
                <td>{d.pages.selected ?? d.pages.total ?? '?'}</td>
                <td>
                  <time dateTime={d.createdAt}>{new Date(d.createdAt).toLocaleString()}</time>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

type ChunkState = { status: 'pending' | 'succeeded' | 'failed'; pages?: [number, number]; code?: string };

function DocumentPage({ id, onBack }: { id: string; onBack: () => void }) {
  const [doc, setDoc] = useState<DocumentView | null>(null);
  const [chunks, setChunks] = useState<ChunkState[]>([]);
  const [result, setResult] = useState<DocumentResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState('');
  useEffect(() => {
    const abort = new AbortController();
    setDoc(null);
    setChunks([]);
    setResult(null);
    const sized = (n: number) => setChunks((c) => (c.length >= n ? c : [...c, ...Array.from({ length: n - c.length }, () => ({ status: 'pending' as const }))]));
    const onEvent = (e: DocumentEvent) => {
      sized(e.data.progress.chunksTotal);
      if (e.type === 'chunk') {
        setChunks((c) => {
          const next = [...c];
          next[e.data.index] = { status: e.data.status, pages: e.data.pages, ...(e.data.error ? { code: e.data.error.code } : {}) };
          return next;
        });
        setLive(`Chunk ${e.data.index + 1} (pages ${e.data.pages[0]}–${e.data.pages[1]}) ${e.data.status}`);
      }
      setDoc((d) => (d ? { ...d, status: e.type === 'chunk' ? d.status : e.data.status, progress: e.data.progress } : d));
      if (e.type !== 'chunk') setLive(STATUS_TEXT[e.data.status]);
      if (e.type === 'end' && e.data.result) void api.result(id).then(setResult, (err: unknown) => setError(String(err)));
    };
    api
      .get(id)
      .then((d) => {
        setDoc(d);
        sized(d.progress.chunksTotal);
        return api.events(id, onEvent, abort.signal);
      })
      .catch((err: unknown) => setError(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err)));
    return () => abort.abort();
  }, [id]);
  // A sync document has no chunk rows: its result's chunks fill the grid.
  const cells: ChunkState[] = result && chunks.every((c) => c.status === 'pending') ? result.chunks.map((c) => ({ status: c.status, pages: [c.pages[0] ?? 0, c.pages[1] ?? 0] as [number, number] })) : chunks;
  const done = cells.filter((c) => c.status !== 'pending').length;
  return (
    <>
      <p>
        <button type="button" class="link" onClick={onBack}>
          ← All documents
        </button>
      </p>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
      {doc && (
        <section class="card" aria-labelledby="doc-title">
          <div class="doc-head">
            <div>
              <h1 id="doc-title">{doc.filename}</h1>
              <p>
                <span class={`badge s-${doc.status}`} id="doc-status">
                  {STATUS_TEXT[doc.status]}
                </span>{' '}
                {doc.pages.selected ?? doc.pages.total ?? '?'} pages · {done}/{cells.length || '?'} chunks
              </p>
            </div>
            <div class="actions">
              {!TERMINAL.has(doc.status) && (
                <button
                  type="button"
                  class="danger"
                  onClick={() => {
                    if (confirm(`Cancel ${doc.filename}? Its pending work stops and its data is deleted.`)) void api.cancel(id).catch((err: unknown) => setError(String(err)));
                  }}
                >
                  Cancel
                </button>
              )}
              {result && (
                <button type="button" onClick={() => download(result, doc.filename)}>
                  Download JSON
                </button>
              )}
            </div>
          </div>
          <h2 id="grid-title">Chunks</h2>
          <ol class="grid" aria-labelledby="grid-title" id="chunk-grid">
            {cells.map((c, i) => (
              <li class={`cell c-${c.status}`} data-status={c.status} title={`Chunk ${i + 1}${c.pages ? `, pages ${c.pages[0]}–${c.pages[1]}` : ''}: ${c.status}${c.code ? ` (${c.code})` : ''}`}>
                <span class="visually-hidden">
                  Chunk {i + 1}
                  {c.pages ? `, pages ${c.pages[0]} to ${c.pages[1]}` : ''}: {c.status}
                </span>
              </li>
            ))}
          </ol>
          <p class="legend" aria-hidden="true">
            <span class="cell c-pending" /> pending <span class="cell c-succeeded" /> analysed <span class="cell c-failed" /> failed
          </p>
          <p class="visually-hidden" aria-live="polite">
            {live}
          </p>
          {doc.error && (
            <p class="error">
              {doc.error.code}: {doc.error.message}
            </p>
          )}
        </section>
      )}
      {result && <ResultView result={result} />}
    </>
  );
}

function download(result: DocumentResult, filename: string): void {
  const url = URL.createObjectURL(new Blob([JSON.stringify(result, null, 2)], { type: 'application/json' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `${filename.replace(/\.pdf$/i, '')}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function ResultView({ result }: { result: DocumentResult }) {
  const groups = useMemo(() => {
    const by = new Map<string, DocumentResult['entities']>();
    for (const e of result.entities) by.set(e.type, [...(by.get(e.type) ?? []), e]);
    return [...by].sort((a, b) => a[0].localeCompare(b[0]));
  }, [result]);
  return (
    <section class="card" aria-labelledby="result-title" id="result">
      <h2 id="result-title">Result</h2>
      <h3>Summary</h3>
      <p id="summary">{result.summary}</p>
      {result.keyPoints.length > 0 && (
        <>
          <h3>Key points</h3>
          <ul>
            {result.keyPoints.map((k) => (
              <li>{k}</li>
            ))}
          </ul>
        </>
      )}
      <h3>Entities</h3>
      <div class="entities" id="entities">
        {groups.map(([type, list]) => (
          <div>
            <h4>{type.toLowerCase()}</h4>
            <ul>
              {list.slice(0, 12).map((e) => (
                <li>
                  {e.text} <span class="muted">×{e.count}, p. {compactPages(e.pages)}</span>
                </li>
              ))}
            </ul>
            {list.length > 12 && <p class="muted">and {list.length - 12} more (in the JSON)</p>}
          </div>
        ))}
      </div>
      <h3>Sentiment</h3>
      <p>
        Overall: <strong>{result.sentiment.label}</strong> ({result.sentiment.score.toFixed(2)})
      </p>
      <SentimentChart result={result} />
      {result.failedPages.length > 0 && (
        <>
          <h3>Failed pages</h3>
          <table class="docs">
            <thead>
              <tr>
                <th scope="col">Page</th>
                <th scope="col">Code</th>
              </tr>
            </thead>
            <tbody>
              {result.failedPages.map((p) => (
                <tr>
                  <td>{p.page}</td>
                  <td>
                    <code>{p.code}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <p class="muted">
        {result.analyzer} · {result.usage.modelCalls} model calls · {result.usage.inputTokens + result.usage.outputTokens} tokens
      </p>
    </section>
  );
}

/** Sentiment per chunk: a bar above the axis for positive, below for negative. */
function SentimentChart({ result }: { result: DocumentResult }) {
  const w = 8;
  const h = 60;
  const n = result.chunks.length;
  return (
    <figure>
      <svg class="chart" viewBox={`0 0 ${Math.max(1, n) * w} ${h}`} preserveAspectRatio="none" role="img" aria-labelledby="chart-caption">
        <line x1="0" x2={n * w} y1={h / 2} y2={h / 2} class="axis" />
        {result.chunks.map((c, i) => {
          const v = Math.max(-1, Math.min(1, c.sentiment.score));
          const bar = Math.abs(v) * (h / 2 - 2);
          return <rect x={i * w + 1} width={w - 2} y={v >= 0 ? h / 2 - bar : h / 2} height={Math.max(0.5, bar)} class={v >= 0 ? 'pos' : 'neg'} />;
        })}
      </svg>
      <figcaption id="chart-caption">
        Sentiment of each of the {n} chunks, from −1 (below the line) to +1 (above).
      </figcaption>
    </figure>
  );
}

function compactPages(pages: number[]): string {
  const out: string[] = [];
  let start = pages[0];
  let prev = pages[0];
  for (const p of [...pages.slice(1), Number.NaN]) {
    if (prev !== undefined && p === prev + 1) {
      prev = p;
      continue;
    }
    if (start !== undefined) out.push(start === prev ? `${start}` : `${start}–${prev}`);
    start = prev = p;
  }
  return out.slice(0, 6).join(', ') + (out.length > 6 ? '…' : '');
}

render(<App />, document.getElementById('app') as HTMLElement);
