// Oracle for the LiveLearning tokenizer tests. NOT run by CI: the JSON it writes is committed.
// 1. Trains tiny BPE vocabularies (a plain greedy pair-count trainer, deterministic) and writes them as
//    tokenizer.json files in each model family's recipe (GPT-2, SmolLM2, Qwen2, Llama-3, Llama-2 legacy,
//    TinyLlama/Metaspace, Llama-2 with unk instead of byte fallback).
// 2. Loads every file with the real Hugging Face `tokenizers` library and records ids, tokens and decodes
//    for a list of tricky texts, plus decodes of seeded random id sequences.
// Usage: npm install && node generate.js   (writes ../Fixtures/*.json)
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const outDir = path.join(__dirname, '..', 'Fixtures');

const corpus = [
  'The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.',
  "I'm sure they're here, but we don't know where they've gone. We'll see what we'd do.",
  'Hello world! Hello there, hello again. Numbers: 1234567, 3.14, 2024, 42 and 1000000.',
  'Online learning keeps a model learning in production, one small update at a time.',
  'Tokenizers split text into words, then merge characters into tokens using ranked merges.',
  '日本語のテキストを少し。日本の語。 café naïve résumé ñandú',
  'line one\nline two\n\nline three\twith tab   and spaces    here.',
  'the the the then there these those this that thin thing things',
  '123 456 789 12 34 56 1234 2345 100 200 300 1000 123123 456456 12 12 12 34 34',
  "it's IT'S he'll she'd you're   spaces   \n\n  indented\r\nwindows\r\n",
];

// GPT-2 byte-to-unicode table.
function bytesToUnicode() {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  }
  const map = new Array(256);
  for (let i = 0; i < bs.length; i++) map[bs[i]] = String.fromCodePoint(cs[i]);
  return map;
}
const B2U = bytesToUnicode();
const byteMap = (s) => Array.from(Buffer.from(s, 'utf8')).map((b) => B2U[b]).join('');

// Greedy BPE trainer over word counts. words: Map(word -> count); each word is an array of symbols.
function train(wordCounts, numMerges, isKnown) {
  let words = [...wordCounts.entries()].map(([w, c]) => ({ syms: Array.from(w), c }));
  const merges = [];
  for (let m = 0; m < numMerges; m++) {
    const counts = new Map();
    for (const { syms, c } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        if (!isKnown(syms[i]) || !isKnown(syms[i + 1])) continue;
        const k = syms[i] + '\u0000' + syms[i + 1];
        counts.set(k, (counts.get(k) || 0) + c);
      }
    }
    let best = null; let bestC = 1;
    for (const [k, c] of counts) {
      if (c > bestC || (c === bestC && best !== null && k < best)) { best = k; bestC = c; }
    }
    if (best === null) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    for (const w of words) {
      const out = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) { out.push(a + b); i++; } else out.push(w.syms[i]);
      }
      w.syms = out;
    }
  }
  return merges;
}

function countWords(words) {
  const m = new Map();
  for (const w of words) if (w.length > 0) m.set(w, (m.get(w) || 0) + 1);
  return m;
}

// Pre-tokenizes the corpus with the real library (the pre-tokenizer of a merge-less tokenizer.json).
function hfPreTokenize(tokJson, text) {
  const t = Tokenizer.fromString(JSON.stringify(tokJson));
  const pre = t.getPreTokenizer();
  return pre.preTokenizeString(text).map((p) => p[0]);
}

const GPT2_REGEX = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function addedToken(id, content, special = true, normalized = false) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized, special };
}

function byteLevelTokenizer({ normalizer, preTokenizer, postProcessor, specials, pairMerges, ignoreMerges, numMerges, extraWords }) {
  const vocab = {};
  for (let b = 0; b < 256; b++) vocab[B2U[b]] = b;
  const base = {
    version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer, pre_tokenizer: preTokenizer,
    post_processor: postProcessor, decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: !!ignoreMerges, vocab, merges: [] },
  };
  const text = corpus.join('\n');
  const normText = normalizer && normalizer.type === 'NFC' ? text.normalize('NFC') : text;
  const words = hfPreTokenize(base, normText);
  const merges = train(countWords(words), numMerges, () => true);
  let next = 256;
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = next++;
  for (const w of extraWords || []) if (!(w in vocab)) vocab[w] = next++;
  base.model.merges = pairMerges ? merges : merges.map(([a, b]) => a + ' ' + b);
  for (const s of specials) base.added_tokens.push(addedToken(next++, s));
  for (const t of base.added_tokens) vocab[t.content] = t.id;
  return base;
}

function sentencePieceTokenizer({ legacy, byteFallback, numMerges, metaspace }) {
  const vocab = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  let next = 3;
  if (byteFallback) for (let b = 0; b < 256; b++) vocab['<0x' + b.toString(16).toUpperCase().padStart(2, '0') + '>'] = next++;
  // Words as SentencePiece sees them: spaces become U+2581 and the text gets a leading U+2581.
  const words = corpus.map((line) => '\u2581' + line.replace(/ /g, '\u2581'));
  // Character alphabet: only chars seen at least twice (so rare chars exercise byte fallback / unk).
  const charCounts = new Map();
  for (const w of words) for (const ch of Array.from(w)) charCounts.set(ch, (charCounts.get(ch) || 0) + 1);
  const alphabet = [...charCounts.entries()].filter(([, c]) => c >= 2).sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1)).map(([ch]) => ch);
  for (const ch of alphabet) vocab[ch] = next++;
  const known = new Set(alphabet);
  const isKnown = (s) => known.has(s) || s.length > 1 && !Array.from(s).some((c) => !known.has(c));
  const merges = train(countWords(words), numMerges, isKnown);
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = next++;
  const added_tokens = [addedToken(0, '<unk>'), addedToken(1, '<s>'), addedToken(2, '</s>')];
  const templ = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  };
  const legacyDecoder = { type: 'Sequence', decoders: [
    { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
    { type: 'Strip', content: ' ', start: 1, stop: 0 }] };
  return {
    version: '1.0', truncation: null, padding: null, added_tokens,
    normalizer: legacy ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] } : null,
    pre_tokenizer: legacy ? null : (metaspace || { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false }),
    post_processor: templ,
    decoder: legacy ? legacyDecoder : { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: !!byteFallback, ignore_merges: false, vocab, merges: merges.map(([a, b]) => a + ' ' + b) },
  };
}

const byteLevelPost = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };
const fixtures = {
  'gpt2': byteLevelTokenizer({ normalizer: null, preTokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    postProcessor: byteLevelPost, specials: ['<|endoftext|>'], pairMerges: false, numMerges: 220 }),
  'gpt2-prefix': byteLevelTokenizer({ normalizer: null, preTokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    postProcessor: byteLevelPost, specials: ['<|endoftext|>'], pairMerges: false, numMerges: 120 }),
  'smollm2': byteLevelTokenizer({ normalizer: null, preTokenizer: { type: 'Sequence', pretokenizers: [
    { type: 'Digits', individual_digits: true }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }] },
    postProcessor: byteLevelPost, specials: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'], pairMerges: false, numMerges: 200 }),
  'qwen2': byteLevelTokenizer({ normalizer: { type: 'NFC' }, preTokenizer: { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: QWEN2_REGEX }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] },
    postProcessor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    specials: ['<|endoftext|>', '<|im_start|>', '<|im_end|>'], pairMerges: true, numMerges: 200 }),
  'llama3': byteLevelTokenizer({ normalizer: null, preTokenizer: { type: 'Sequence', pretokenizers: [
    { type: 'Split', pattern: { Regex: LLAMA3_REGEX }, behavior: 'Isolated', invert: false },
    { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    postProcessor: { type: 'Sequence', processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [0], tokens: ['<|begin_of_text|>'] } } }] },
    specials: ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'],
    pairMerges: true, ignoreMerges: true, numMerges: 200, extraWords: [byteMap(' xyzzy'), byteMap('plugh'), byteMap(' 日本語')] }),
  'llama2-legacy': sentencePieceTokenizer({ legacy: true, byteFallback: true, numMerges: 150 }),
  'tinyllama': sentencePieceTokenizer({ legacy: false, byteFallback: true, numMerges: 150 }),
  'llama2-unk': sentencePieceTokenizer({ legacy: true, byteFallback: false, numMerges: 80 }),
};
// Added-token flags: lstrip, rstrip, single_word, normalized (matched after a Lowercase normalizer), non-special.
{
  const t = byteLevelTokenizer({ normalizer: { type: 'Lowercase' }, preTokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    postProcessor: byteLevelPost, specials: [], pairMerges: false, numMerges: 100 });
  let next = Math.max(...Object.values(t.model.vocab)) + 1;
  const add = (content, flags) => {
    const tok = Object.assign(addedToken(next++, content), flags);
    t.added_tokens.push(tok);
    t.model.vocab[content] = tok.id;
  };
  add('<mask>', { lstrip: true });
  add('[R]', { rstrip: true });
  add('foo', { single_word: true, special: false });
  add('bar', { normalized: true, special: false });
  add('<|x|>', {});
  add('<|x|>y', {});
  fixtures['addedflags'] = t;
}
// Pre-tokenizer variants: every Split behaviour, invert, literal and custom regex patterns, digit runs,
// Metaspace with split and prepend_scheme always.
{
  const byteLevelTail = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };
  const variants = {
    'split-removed': { type: 'Split', pattern: { String: ' ' }, behavior: 'Removed', invert: false },
    'split-merged-previous': { type: 'Split', pattern: { Regex: '\\d+' }, behavior: 'MergedWithPrevious', invert: false },
    'split-merged-next': { type: 'Split', pattern: { String: '-' }, behavior: 'MergedWithNext', invert: false },
    'split-contiguous': { type: 'Split', pattern: { Regex: '[aeiou]' }, behavior: 'Contiguous', invert: false },
    'split-invert': { type: 'Split', pattern: { Regex: '\\p{L}+' }, behavior: 'Removed', invert: true },
    'digits-runs': { type: 'Digits', individual_digits: false },
  };
  for (const [name, pre] of Object.entries(variants)) {
    fixtures[name] = byteLevelTokenizer({ normalizer: null, preTokenizer: { type: 'Sequence', pretokenizers: [pre, byteLevelTail] },
      postProcessor: null, specials: ['<|endoftext|>'], pairMerges: false, numMerges: 60 });
  }
  fixtures['metaspace-split'] = sentencePieceTokenizer({ legacy: false, byteFallback: true, numMerges: 60,
    metaspace: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true } });
}
// Fix the BOS id of the Llama-3 template now that ids are known.
{
  const l3 = fixtures['llama3'];
  const bos = l3.added_tokens.find((t) => t.content === '<|begin_of_text|>').id;
  l3.post_processor.processors[1].special_tokens['<|begin_of_text|>'].ids = [bos];
}

const specialsIn = {
  'gpt2': ['<|endoftext|>'], 'gpt2-prefix': ['<|endoftext|>'], 'smollm2': ['<|im_start|>', '<|im_end|>'],
  'qwen2': ['<|im_start|>', '<|im_end|>'], 'llama3': ['<|eot_id|>', '<|begin_of_text|>'],
  'llama2-legacy': ['</s>', '<s>'], 'tinyllama': ['</s>', '<s>'], 'llama2-unk': ['</s>', '<s>'],
  'addedflags': ['<|x|>', '<mask>', '[R]'],
  'split-removed': ['<|endoftext|>'], 'split-merged-previous': ['<|endoftext|>'], 'split-merged-next': ['<|endoftext|>'],
  'split-contiguous': ['<|endoftext|>'], 'split-invert': ['<|endoftext|>'], 'digits-runs': ['<|endoftext|>'], 'metaspace-split': ['</s>'],
};
const extraTexts = {
  'addedflags': ['a <mask> b', 'a   <mask>b', '<mask> start', 'x[R]   y', 'x [R]\n\n', 'foo food afoo foo. _foo (foo)', 'BAR bar Bar xbarx',
    'hi<|x|>there', '<|x|>y <|x|>z', 'Hello <MASK> World'],
  'split-merged-next': ['a-b--c-', '-lead', 'x - y'], 'split-merged-previous': ['ab12cd345', '12ab', 'x 9 9'],
  'split-contiguous': ['queueing aeiou', 'rhythm'], 'split-removed': ['a  b', '  '],
};

const commonTexts = [
  '', ' ', 'Hello world', ' leading', 'trailing ', '  both  ', 'a  b   c\n\n\t x', '1234567 3.14', 'x=12345678901',
  "I'm don't WE'LL they've", "'S 'ſ ſ 'Ve 'LL", '日本語のテキスト', ' 日本語', '👩‍👩‍👧 🇯🇵', 'e\u0301 ñ café',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𠀀𠀁 abc𝟘𝟙𝟚 x', 'line1\r\nline2\n\n\nend', 'x   \n  y', '\tx', '\n\nx', 'a\u00a0b\u3000c\u2003d',
  'x\u0085y', '٣٤٥ arabic ²³ ½', 'Ω≈ç√∫ ¡™£¢∞§¶•ªº–≠', 'ﬁ ﬀ', '...!!! ?? hello.', ' xyzzy plugh xyzzy', '   ',
  'The quick brown fox jumps over the lazy dog.', 'online learning\n\n', 'wörds Straße ÅNGSTRÖM',
  'tab\tsep\t\tend', 'mixed123abc456', '😀Zabc x😀y 😀1', 'a' + 'b'.repeat(40), '\u0301start with combining',
];

function seededRandom(seed) {
  let s = seed >>> 0;
  return () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 4294967296; };
}

(async () => {
  for (const [name, json] of Object.entries(fixtures)) {
    const jsonText = JSON.stringify(json, null, 1);
    fs.writeFileSync(path.join(outDir, name + '.tokenizer.json'), jsonText + '\n');
    const tok = Tokenizer.fromString(jsonText);
    const texts = commonTexts.slice().concat(extraTexts[name] || []);
    for (const s of specialsIn[name]) {
      texts.push('hi' + s + 'there', s + 'start', 'end ' + s, s + s + ' x ' + s + '\n');
    }
    const cases = [];
    const normalizer = tok.getNormalizer();
    const preTokenizer = tok.getPreTokenizer();
    for (const text of texts) {
      const normalized = normalizer ? normalizer.normalizeString(text) : text;
      const preTokens = preTokenizer ? preTokenizer.preTokenizeString(normalized).map((p) => p[0]) : null;
      const withSpecial = await tok.encode(text, null, { addSpecialTokens: true });
      const without = await tok.encode(text, null, { addSpecialTokens: false });
      const ids = withSpecial.getIds();
      cases.push({
        text,
        normalized,
        preTokens,
        ids,
        tokens: withSpecial.getTokens(),
        idsWithoutSpecialTokens: without.getIds(),
        decoded: await tok.decode(ids, false),
        decodedSkipSpecial: await tok.decode(ids, true),
      });
    }
    const vocabSize = tok.getVocabSize(true);
    const rnd = seededRandom(1234);
    const decodeCases = [];
    for (let i = 0; i < 40; i++) {
      const len = 1 + Math.floor(rnd() * 8);
      const ids = [];
      for (let j = 0; j < len; j++) ids.push(Math.floor(rnd() * vocabSize));
      decodeCases.push({ ids, decoded: await tok.decode(ids, false), decodedSkipSpecial: await tok.decode(ids, true) });
    }
    const expected = { fixture: name + '.tokenizer.json', oracle: 'huggingface tokenizers (npm) ' + require('tokenizers/package.json').version, vocabSize, cases, decodeCases };
    fs.writeFileSync(path.join(outDir, name + '.expected.json'), JSON.stringify(expected, null, 1) + '\n');
    console.log(name, 'vocab', vocabSize, 'cases', cases.length);
  }
})();
