/**
 * Test PDFs with known content: realistic English prose naming people, places, organisations,
 * dates and amounts of money, with a chosen sentiment, one "Page N" marker per page.
 * Used by unit tests, the local stack and `bench/extract.ts`.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createDeflate, crc32, deflateSync } from 'node:zlib';
import PDFDocument from 'pdfkit';
import { seededRandom } from '../random.js';

/** What {@link generatePdf} produces. */
export interface GeneratePdfOptions {
  /** Number of pages, 1..200000. */
  pages: number;
  /**
   * `helvetica`: a standard font, not embedded. `embedded-ttf`: DejaVuSans embedded (subset).
   * @defaultValue 'helvetica'
   */
  font?: 'helvetica' | 'embedded-ttf';
  /** Tone of the sentiment-laden sentences. @defaultValue 'positive' */
  sentiment?: 'positive' | 'negative';
  /** Encrypts the PDF with this user password (RC4, as pdfkit does by default). @defaultValue unencrypted */
  encrypt?: { userPassword: string };
  /**
   * 1-based pages drawn as a raster image XObject (grey text-like stripes) with no text
   * operators: a scanned page. @defaultValue none
   */
  imageOnlyPages?: number[];
  /** 1-based pages left blank: no text, no image. @defaultValue none */
  blankPages?: number[];
  /** Seed of the content; the same options give the same text. @defaultValue 1 */
  seed?: number;
  /** A line written under each page's "Page N" heading (tells documents apart in a model's log). @defaultValue none */
  label?: string;
}

/** A generated PDF and the ground truth of its content. */
export interface GeneratedPdf {
  bytes: Buffer;
  /** Text written on each page (index 0 = page 1), paragraphs separated by blank lines; '' for image-only and blank pages. */
  pageTexts: string[];
  /** Every entity that occurs in the text, each listed once, in order of first use. */
  facts: { people: string[]; places: string[]; organizations: string[]; dates: string[]; money: string[] };
}

const MAX_PAGES = 200_000;

const PEOPLE = [
  'Maria Gonzalez', 'John Smith', 'Aisha Khan', 'Robert Johnson', 'Emily Chen', 'David Miller',
  'Sofia Rossi', 'James Wilson', 'Priya Patel', 'Michael Brown', 'Laura Schmidt', 'Daniel Garcia',
  'Olivia Martin', 'Thomas Anderson', 'Hannah Weber', 'Carlos Silva', 'Anna Kowalski', 'Peter Novak',
];
const PLACES = [
  'Paris', 'Berlin', 'Chicago', 'London', 'Tokyo', 'Madrid', 'Toronto', 'Sydney', 'Boston',
  'Rome', 'Vienna', 'Amsterdam', 'Seattle', 'Dublin', 'Lisbon', 'Denver', 'Stockholm', 'Prague',
];
const ORGANIZATIONS = [
  'Acme Corporation', 'United Nations', 'Globex Industries', 'World Health Organization',
  'Northwind Traders', 'Initech Systems', 'European Central Bank', 'Red Cross', 'Stark Logistics',
  'Umbrella Pharmaceuticals', 'Contoso Bank', 'Wayne Enterprises',
];
/** Organisations whose English names take "the". */
const WITH_ARTICLE = new Set(['United Nations', 'World Health Organization', 'European Central Bank', 'Red Cross']);
const MONTHS = [
  'January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October',
  'November', 'December',
];
const TOPICS = [
  'supply chain', 'renewable energy', 'public health', 'customer service', 'logistics network',
  'research programme', 'software platform', 'training initiative', 'housing project', 'water treatment plant',
  'quarterly audit', 'marketing campaign', 'data centre', 'hospital expansion', 'school partnership',
];

type Slot = 'person' | 'person2' | 'place' | 'place2' | 'org' | 'date' | 'money' | 'topic';

/** Neutral sentences carrying the facts; `{slot}` placeholders are filled per use. */
const FACT_SENTENCES = [
  'On {date}, {person} met representatives of {org} in {place} to discuss the {topic}.',
  '{org} announced from its {place} office that {person} would lead the {topic} from {date}.',
  '{person} said the budget of {money} set on {date} covers the {topic} in {place} and {place2}.',
  'The board of {org} allocated {money} to the {topic}, and {person2} will report on it in {place}.',
  '{person} and {person2} signed the contract with {org} in {place} on {date}.',
  'A delegation from {org} travelled from {place} to {place2} to review the {topic} with {person}.',
  'The contract of {money} went to {org} after a review that ended on {date}.',
  'In {place}, {person2} presented the {topic} to the regional committee of {org}.',
  'Spending on the {topic} came to {money} by {date}, in figures published by {org}.',
  '{person} visited the {place} site on {date} and met the engineers of the {topic}.',
  'Following the meeting in {place2}, {org} confirmed an additional {money} for the {topic}.',
  'The report written by {person} for {org} describes the {topic} in {place} in detail.',
];

const NEUTRAL_SENTENCES = [
  'The committee reviewed the schedule, the staffing plan and the list of open questions.',
  'Several suppliers submitted proposals, and each was assessed against the published criteria.',
  'The minutes of the meeting were circulated to all participants the following week.',
  'Further details are listed in the appendix, together with the contact persons for each region.',
  'The next review is planned for the end of the quarter, after the field visits are complete.',
  'Local partners provided translations of the main documents for the community meetings.',
  'The timetable assumes that permits are issued within the usual period.',
  'Questions from the public were collected online and answered in a separate note.',
];

const POSITIVE_SENTENCES = [
  'The team was delighted with the excellent results.',
  'Everyone praised the wonderful collaboration and the outstanding quality of the work.',
  'Customers were thrilled, and satisfaction scores rose to their best level ever.',
  'It was a remarkable success, and the staff felt proud and happy about what they achieved.',
  'The partners were very pleased with the fantastic progress and the friendly atmosphere.',
  'Investors welcomed the great news with enthusiasm and warm congratulations.',
  'The new approach worked brilliantly, and the mood in the office was joyful.',
  'Volunteers described the event as inspiring, delightful and a great pleasure.',
];

const NEGATIVE_SENTENCES = [
  'The project was a terrible failure and everyone was angry.',
  'Customers were furious about the awful service and the repeated delays.',
  'The results were disappointing, and the staff felt frustrated and miserable.',
  'It was a disastrous quarter, with painful losses and bitter complaints.',
  'The partners were upset by the poor quality and the horrible communication.',
  'Investors reacted with anger and fear to the dreadful news.',
  'The new approach failed badly, and the mood in the office was gloomy and hostile.',
  'Residents described the situation as shocking, sad and completely unacceptable.',
];

class ContentWriter {
  private readonly rand: () => number;
  private readonly seen = {
    people: new Set<string>(),
    places: new Set<string>(),
    organizations: new Set<string>(),
    dates: new Set<string>(),
    money: new Set<string>(),
  };

  constructor(seed: number, private readonly tone: readonly string[]) {
    this.rand = seededRandom(seed);
  }

  get facts(): GeneratedPdf['facts'] {
    return {
      people: [...this.seen.people],
      places: [...this.seen.places],
      organizations: [...this.seen.organizations],
      dates: [...this.seen.dates],
      money: [...this.seen.money],
    };
  }

  /** Paragraphs of one page, about 250-350 words. */
  page(pageNumber: number): string[] {
    const paragraphs: string[] = [];
    const count = 4 + this.int(2);
    for (let p = 0; p < count; p++) {
      const sentences: string[] = [];
      // Each paragraph: facts, tone sentences, filler, in a varying order. Facts and filler are
      // worded without sentiment-bearing words, so the tone sentences alone set the sentiment.
      const n = 3 + this.int(3);
      for (let s = 0; s < n; s++) {
        const r = this.rand();
        if (r < 0.35) sentences.push(this.fact());
        else if (r < 0.85) sentences.push(this.pick(this.tone));
        else sentences.push(this.pick(NEUTRAL_SENTENCES));
      }
      if (p === 0) sentences.unshift(`Section ${pageNumber} of this report covers the ${this.pick(TOPICS)}.`);
      paragraphs.push(sentences.join(' '));
    }
    return paragraphs;
  }

  private fact(): string {
    const template = this.pick(FACT_SENTENCES);
    const values = new Map<Slot, string>();
    const person = this.pick(PEOPLE);
    const place = this.pick(PLACES);
    values.set('person', person);
    values.set('person2', this.pickOther(PEOPLE, person));
    values.set('place', place);
    values.set('place2', this.pickOther(PLACES, place));
    values.set('org', this.pick(ORGANIZATIONS));
    values.set('date', this.date());
    values.set('money', this.money());
    values.set('topic', this.pick(TOPICS));
    const sentence = template.replace(/\{(\w+)\}/g, (_, slot: string) => {
      const value = values.get(slot as Slot) ?? '';
      this.record(slot as Slot, value);
      return slot === 'org' && WITH_ARTICLE.has(value) ? `the ${value}` : value;
    });
    // Sentences may start with a placeholder; keep the first letter upper case.
    return sentence.charAt(0).toUpperCase() + sentence.slice(1);
  }

  private record(slot: Slot, value: string): void {
    if (slot === 'person' || slot === 'person2') this.seen.people.add(value);
    else if (slot === 'place' || slot === 'place2') this.seen.places.add(value);
    else if (slot === 'org') this.seen.organizations.add(value);
    else if (slot === 'date') this.seen.dates.add(value);
    else if (slot === 'money') this.seen.money.add(value);
  }

  private date(): string {
    return `${this.pick(MONTHS)} ${1 + this.int(28)}, ${2019 + this.int(7)}`;
  }

  private money(): string {
    const r = this.rand();
    if (r < 0.5) return `$${(10 + this.int(90)) / 10} million`;
    if (r < 0.8) return `$${(10 + this.int(990)).toLocaleString('en-US')},000`;
    return `$${1 + this.int(9)}.${this.int(10)} billion`;
  }

  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  private pickOther<T>(items: readonly T[], not: T): T {
    const value = this.pick(items);
    return value === not ? (items[(items.indexOf(value) + 1) % items.length] as T) : value;
  }
}

const requireFromHere = createRequire(import.meta.url);
let dejavuCache: Buffer | undefined;

/** Bytes of DejaVuSans.ttf from the `dejavu-fonts-ttf` package. */
async function dejavuSans(): Promise<Buffer> {
  if (!dejavuCache) {
    const { readFile } = await import('node:fs/promises');
    dejavuCache = await readFile(requireFromHere.resolve('dejavu-fonts-ttf/ttf/DejaVuSans.ttf'));
  }
  return dejavuCache;
}

/**
 * A grey-scale PNG that looks like a scanned page: dark bars where lines of text would be.
 * Written by hand because it is a few bytes of fixed structure and pdfkit only embeds PNG/JPEG.
 */
function scannedPagePng(width: number, height: number, rand: () => number): Buffer {
  const raw = Buffer.alloc((width + 1) * height, 0xff);
  for (let y = 0; y < height; y++) {
    raw[y * (width + 1)] = 0; // filter type None
  }
  for (let line = 40; line + 10 < height - 40; line += 18) {
    const end = 40 + Math.floor((width - 80) * (0.6 + 0.4 * rand()));
    for (let y = line; y < line + 9; y++) {
      for (let x = 40; x < end; x++) {
        if ((x * 7 + y * 3) % 11 !== 0) raw[y * (width + 1) + 1 + x] = 0x30;
      }
    }
  }
  const chunk = (type: string, data: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'ascii');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // grey-scale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/**
 * Generates a PDF with known content.
 * @throws RangeError when `pages` is outside 1..200000, or an image-only or blank page does not exist or is both.
 */
export async function generatePdf(options: GeneratePdfOptions): Promise<GeneratedPdf> {
  const { pages } = options;
  if (!Number.isInteger(pages) || pages < 1 || pages > MAX_PAGES) {
    throw new RangeError(`pages must be an integer in 1..${MAX_PAGES}, got ${pages}`);
  }
  const imageOnly = new Set(options.imageOnlyPages ?? []);
  for (const p of imageOnly) {
    if (!Number.isInteger(p) || p < 1 || p > pages) throw new RangeError(`imageOnlyPages: no page ${p}`);
  }
  const blank = new Set(options.blankPages ?? []);
  for (const p of blank) {
    if (!Number.isInteger(p) || p < 1 || p > pages) throw new RangeError(`blankPages: no page ${p}`);
    if (imageOnly.has(p)) throw new RangeError(`page ${p} cannot be both image-only and blank`);
  }
  const seed = options.seed ?? 1;
  const writer = new ContentWriter(seed, options.sentiment === 'negative' ? NEGATIVE_SENTENCES : POSITIVE_SENTENCES);

  const doc = new PDFDocument({
    autoFirstPage: false,
    size: 'LETTER',
    margin: 54,
    compress: true,
    // Fixed dates keep the output byte-for-byte reproducible for a given seed.
    info: { Title: `docorch test document (seed ${seed})`, CreationDate: new Date(Date.UTC(2024, 0, 1)) },
    ...(options.encrypt ? { userPassword: options.encrypt.userPassword, pdfVersion: '1.7' as const } : {}),
  });
  const chunks: Buffer[] = [];
  doc.on('data', (c: Buffer) => chunks.push(c));
  const finished = new Promise<void>((resolve, reject) => {
    doc.on('end', resolve);
    doc.on('error', reject);
  });

  let added = 0;
  doc.on('pageAdded', () => {
    added++;
  });
  if (options.font === 'embedded-ttf') doc.registerFont('body', await dejavuSans());
  const bodyFont = options.font === 'embedded-ttf' ? 'body' : 'Helvetica';

  const pageTexts: string[] = [];
  const imageRand = seededRandom(seed ^ 0x5eed);
  let png: Buffer | undefined;
  for (let n = 1; n <= pages; n++) {
    doc.addPage();
    if (imageOnly.has(n)) {
      png ??= scannedPagePng(510, 660, imageRand);
      doc.image(png, 54, 54, { width: 504 });
      pageTexts.push('');
      continue;
    }
    if (blank.has(n)) {
      pageTexts.push('');
      continue;
    }
    const paragraphs = writer.page(n);
    doc.font(bodyFont).fontSize(14).text(`Page ${n}`, { paragraphGap: 8 });
    doc.fontSize(10.5);
    if (options.label) doc.text(options.label, { paragraphGap: 8 });
    for (const paragraph of paragraphs) doc.text(paragraph, { paragraphGap: 8, lineGap: 1.5 });
    pageTexts.push([`Page ${n}`, ...(options.label ? [options.label] : []), ...paragraphs].join('\n\n'));
    // Text that overflowed would land on an extra page and break the ground truth.
    if (added !== n) throw new Error(`generatePdf: page ${n} overflowed; shorten the paragraphs`);
  }
  doc.end();
  await finished;
  return { bytes: Buffer.concat(chunks), pageTexts, facts: writer.facts };
}

/** {@link generatePdf}, then writes the bytes to `path`. */
export async function writePdf(path: string, options: GeneratePdfOptions): Promise<GeneratedPdf> {
  const pdf = await generatePdf(options);
  await writeFile(path, pdf.bytes);
  return pdf;
}

/**
 * Writes a valid 3-page PDF of about `bytes` bytes: {@link writePdf}'s document with an incremental
 * update appended that holds one unreferenced stream of `bytes` zero bytes (so a reader that
 * follows the structure never reads it, and one that loads the whole file holds all of it).
 * With `updates` > 1, the bytes are split over that many updates, each with its own
 * cross-reference section and trailer (chained by /Prev): a reader then reads sections spread
 * through the file, not only at its ends. @param options.updates - @defaultValue 1
 */
export async function writeLargePdf(file: string, bytes: number, options: { updates?: number } = {}): Promise<void> {
  await writePdf(file, { pages: 3, seed: 5 });
  const base = await readFile(file);
  const text = base.toString('latin1');
  let prev = Number(/startxref\s+(\d+)\s+%%EOF\s*$/.exec(text)?.[1]);
  const size = Number(/\/Size\s+(\d+)/.exec(text)?.[1]);
  const root = /\/Root\s+(\d+\s+\d+\s+R)/.exec(text)?.[1];
  if (!Number.isFinite(prev) || !Number.isFinite(size) || !root) throw new Error('could not read the base PDF trailer');
  const out = createWriteStream(file, { flags: 'a' });
  let offset = base.length;
  const write = async (chunk: Buffer | string) => {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    offset += buf.length;
    if (!out.write(buf)) await once(out, 'drain');
  };
  const block = Buffer.alloc(1024 * 1024);
  const updates = Math.max(1, options.updates ?? 1);
  for (let u = 0; u < updates; u++) {
    const length = Math.floor(bytes / updates) + (u === updates - 1 ? bytes % updates : 0);
    const id = size + u;
    await write('\n');
    const objOffset = offset;
    await write(`${id} 0 obj\n<< /Length ${length} >>\nstream\n`);
    for (let left = length; left > 0; left -= block.length) await write(left >= block.length ? block : block.subarray(0, left));
    await write('\nendstream\nendobj\n');
    const xref = offset;
    await write(`xref\n${id} 1\n${String(objOffset).padStart(10, '0')} 00000 n \ntrailer\n<< /Size ${id + 1} /Root ${root} /Prev ${prev} >>\nstartxref\n${xref}\n%%EOF\n`);
    prev = xref;
  }
  out.end();
  await once(out, 'finish');
}

// ---------------------------------------------------------------------------------------------
// Hostile fixtures: structurally valid PDFs that attack limits. Written by hand because pdfkit
// (rightly) cannot produce them; each is a few objects plus a classic xref table.

/** Assembles a PDF from object bodies (object i+1 = bodies[i]; object 1 must be the catalog). */
function assemblePdf(bodies: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n', 'latin1')];
  let offset = parts[0]!.length;
  const offsets: number[] = [];
  bodies.forEach((body, i) => {
    offsets.push(offset);
    const chunk = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`), body, Buffer.from('\nendobj\n')]);
    parts.push(chunk);
    offset += chunk.length;
  });
  const xref = [`xref\n0 ${bodies.length + 1}\n0000000000 65535 f \n`];
  for (const o of offsets) xref.push(`${String(o).padStart(10, '0')} 00000 n \n`);
  xref.push(`trailer\n<< /Size ${bodies.length + 1} /Root 1 0 R >>\nstartxref\n${offset}\n%%EOF\n`);
  parts.push(Buffer.from(xref.join(''), 'latin1'));
  return Buffer.concat(parts);
}

function streamObject(dict: string, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`<< ${dict} /Length ${data.length} >>\nstream\n`, 'latin1'), data, Buffer.from('\nendstream')]);
}

/**
 * A valid PDF of `pages` blank pages, cheap to build (200,000 pages: about 13 MB in 0.2 s).
 * For page-count limits: a reader should refuse it from the page count, without touching pages.
 */
export function generateBlankPagesPdf(pages: number): Buffer {
  if (!Number.isInteger(pages) || pages < 1 || pages > 1_000_000) throw new RangeError(`pages must be in 1..1000000, got ${pages}`);
  const bodies: Buffer[] = [Buffer.from('<< /Type /Catalog /Pages 2 0 R >>')];
  const kids: string[] = [];
  for (let i = 0; i < pages; i++) kids.push(`${i + 3} 0 R`);
  bodies.push(Buffer.from(`<< /Type /Pages /Count ${pages} /MediaBox [0 0 612 792] /Kids [${kids.join(' ')}] >>`));
  const page = Buffer.from('<< /Type /Page /Parent 2 0 R >>');
  for (let i = 0; i < pages; i++) bodies.push(page);
  return assemblePdf(bodies);
}

/** Deflates `size` bytes made of `unit` repeated, without holding them in memory. */
async function deflateRepeated(unit: Buffer, size: number, prefix = Buffer.alloc(0), suffix = Buffer.alloc(0)): Promise<Buffer> {
  const deflate = createDeflate({ level: 9 });
  const out: Buffer[] = [];
  deflate.on('data', (c: Buffer) => out.push(c));
  const done = new Promise<void>((resolve, reject) => {
    deflate.on('end', resolve);
    deflate.on('error', reject);
  });
  const block = Buffer.alloc(Math.max(unit.length, Math.floor((1 << 20) / unit.length) * unit.length));
  for (let i = 0; i < block.length; i += unit.length) unit.copy(block, i);
  const write = (b: Buffer) =>
    new Promise<void>((resolve) => {
      if (deflate.write(b)) resolve();
      else deflate.once('drain', resolve);
    });
  await write(prefix);
  for (let written = 0; written < size; written += block.length) await write(block);
  await write(suffix);
  deflate.end();
  await done;
  return Buffer.concat(out);
}

/** What {@link generateBombPdf} attacks. */
export type BombKind =
  /** A Flate content stream that inflates to `decodedBytes` of whitespace (memory outside the JS heap). */
  | 'decompression'
  /** An embedded font program that inflates to `decodedBytes` (decoded synchronously by PDF.js). */
  | 'font'
  /** A content stream holding one array with `decodedBytes / 2` numbers (memory inside the JS heap). */
  | 'heap'
  /** A content stream showing `decodedBytes` of text (text limits). */
  | 'text'
  /**
   * A page with no text that paints one grey-scale image XObject decoding to about `decodedBytes`
   * (a square of white pixels): memory of rendering scanned pages.
   */
  | 'image';

/**
 * A one-page PDF of a few MB at most that expands to `decodedBytes` when read (default 1 GiB).
 * @param decodedBytes - decoded size; 1 GiB deflates to about 1 MB.
 */
export async function generateBombPdf(kind: BombKind, decodedBytes = 1 << 30): Promise<Buffer> {
  const catalog = Buffer.from('<< /Type /Catalog /Pages 2 0 R >>');
  const pagesTree = Buffer.from('<< /Type /Pages /Count 1 /Kids [3 0 R] >>');
  const page = Buffer.from(
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>',
  );
  const helvetica = Buffer.from('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>');
  switch (kind) {
    case 'decompression': {
      const data = await deflateRepeated(Buffer.from(' '), decodedBytes, Buffer.from('BT /F1 12 Tf 72 720 Td (bomb) Tj ET '));
      return assemblePdf([catalog, pagesTree, page, streamObject('/Filter /FlateDecode', data), helvetica]);
    }
    case 'text': {
      const line = Buffer.from(`(${'All work and no play makes Jack a dull boy. '.repeat(20)}) Tj T* `, 'latin1');
      const data = await deflateRepeated(line, decodedBytes, Buffer.from('BT /F1 10 Tf 12 TL 36 756 Td '), Buffer.from(' ET'));
      return assemblePdf([catalog, pagesTree, page, streamObject('/Filter /FlateDecode', data), helvetica]);
    }
    case 'heap': {
      const data = await deflateRepeated(Buffer.from('0 '), decodedBytes, Buffer.from('BT /F1 12 Tf 72 720 Td ['), Buffer.from('] TJ ET'));
      return assemblePdf([catalog, pagesTree, page, streamObject('/Filter /FlateDecode', data), helvetica]);
    }
    case 'image': {
      const side = Math.max(1, Math.floor(Math.sqrt(decodedBytes)));
      const data = await deflateRepeated(Buffer.from([0xff]), side * side);
      const imagePage = Buffer.from(
        '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>',
      );
      return assemblePdf([
        catalog,
        pagesTree,
        imagePage,
        streamObject('', Buffer.from('q 612 0 0 792 0 0 cm /Im1 Do Q')),
        streamObject(`/Type /XObject /Subtype /Image /Width ${side} /Height ${side} /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode`, data),
      ]);
    }
    case 'font': {
      const data = await deflateRepeated(Buffer.alloc(1), decodedBytes);
      const content = Buffer.from('BT /F1 12 Tf 72 720 Td (font bomb) Tj ET');
      return assemblePdf([
        catalog,
        pagesTree,
        page,
        streamObject('', content),
        Buffer.from('<< /Type /Font /Subtype /TrueType /BaseFont /Bomb /FirstChar 32 /LastChar 126 /FontDescriptor 6 0 R >>'),
        Buffer.from(
          '<< /Type /FontDescriptor /FontName /Bomb /Flags 32 /FontBBox [0 0 1000 1000] /ItalicAngle 0 /Ascent 800 /Descent -200 /CapHeight 700 /StemV 80 /FontFile2 7 0 R >>',
        ),
        streamObject(`/Filter /FlateDecode /Length1 ${decodedBytes}`, data),
      ]);
    }
  }
}
