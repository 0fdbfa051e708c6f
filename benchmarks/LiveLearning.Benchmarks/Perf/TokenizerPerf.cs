using System.Text;
using System.Text.Json.Nodes;
using LiveLearning.Tokenization;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>
/// Tokenizer throughput on a synthetic Llama-3-recipe tokenizer (Split regex + byte-level BPE, ~1.6k tokens:
/// bytes, every letter pair, every space+letter and space+pair): encode of English-like text (warm word cache),
/// one 100 kB word (uncached, stresses the merge loop) and decode.
/// </summary>
internal sealed class TokenizerPerf : IPerfProbe
{
    public int Order => 50;

    public void Run(PerfContext perf)
    {
        var tokenizer = Tokenizer.FromJson(BuildTokenizerJson(), "synthetic-llama3.json");
        string text = RandomText(64 * 1024, seed: 11);
        string word = RandomWord(100_000, seed: 12);

        double encodeSeconds = PerfContext.MedianSeconds(() => tokenizer.Encode(text, addSpecialTokens: false));
        perf.Report("tokenizer_encode_text_MBps", text.Length / encodeSeconds / 1e6);

        double wordSeconds = PerfContext.MedianSeconds(() => tokenizer.Encode(word, addSpecialTokens: false), samples: 5, minSampleSeconds: 0.01);
        perf.Report("tokenizer_encode_100kB_word_ms", wordSeconds * 1e3);

        var ids = tokenizer.Encode(text, addSpecialTokens: false);
        double decodeSeconds = PerfContext.MedianSeconds(() => tokenizer.Decode(ids));
        perf.Report("tokenizer_decode_text_MBps", text.Length / decodeSeconds / 1e6);
        perf.Report("tokenizer_chars_per_token", (double)text.Length / ids.Count);
    }

    private static string RandomText(int length, int seed)
    {
        string[] words = ["the", "model", "keeps", "learning", "in", "production", "one", "small", "update", "at", "a", "time",
            "tokens", "merge", "into", "words", "and", "numbers", "like", "2024", "or", "3.14", "appear", "too", "I'm", "don't"];
        var rng = new Random(seed);
        var sb = new StringBuilder(length + 16);
        while (sb.Length < length)
        {
            sb.Append(words[rng.Next(words.Length)]);
            sb.Append(rng.Next(12) == 0 ? ".\n" : " ");
        }
        return sb.ToString(0, length);
    }

    private static string RandomWord(int length, int seed)
    {
        var rng = new Random(seed);
        var chars = new char[length];
        for (int i = 0; i < length; i++)
        {
            chars[i] = (char)('a' + rng.Next(26));
        }

        return new string(chars);
    }

    private static string BuildTokenizerJson()
    {
        var byteChar = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            byteChar[b] = printable ? (char)b : (char)(0x100 + extra++);
        }
        var vocab = new JsonObject();
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            vocab[byteChar[b].ToString()] = next++;
        }

        var merges = new JsonArray();
        string space = byteChar[' '].ToString();
        for (char a = 'a'; a <= 'z'; a++)
        {
            for (char c = 'a'; c <= 'z'; c++)
            {
                vocab[$"{a}{c}"] = next++;
                merges.Add($"{a} {c}");
            }
        }
        for (char a = 'a'; a <= 'z'; a++)
        {
            vocab[space + a] = next++;
            merges.Add($"{space} {a}");
        }
        for (char a = 'a'; a <= 'z'; a++)
        {
            for (char c = 'a'; c <= 'z'; c++)
            {
                vocab[$"{space}{a}{c}"] = next++;
                merges.Add($"{space}{a} {c}");
            }
        }
        const string llama3Regex = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = llama3Regex }, ["behavior"] = "Isolated", ["invert"] = false },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
            },
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = merges, ["ignore_merges"] = true },
        };
        return root.ToJsonString();
    }
}
