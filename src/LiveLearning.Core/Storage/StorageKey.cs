using System.Security.Cryptography;
using System.Text;

namespace LiveLearning.Storage;

/// <summary>
/// The owner's key for encryption at rest: journal records and snapshot files are sealed with AES-256-GCM under it.
/// Each sealed message carries a fresh random 96-bit nonce and a 128-bit tag, so a changed byte or a wrong key is
/// detected, never decrypted into garbage. Files also record the key's fingerprint (an HMAC of a constant, not the
/// key), which tells a wrong key apart from corrupted data.
/// </summary>
/// <remarks>Random nonces are safe for well over a billion messages per key; rotate keys long before 2^32.</remarks>
public sealed class StorageKey : IDisposable
{
    /// <summary>Bytes of nonce before each sealed message.</summary>
    public const int NonceBytes = 12;

    /// <summary>Bytes of authentication tag after each sealed message.</summary>
    public const int TagBytes = 16;

    /// <summary>Bytes a sealed message adds to its plaintext.</summary>
    public const int Overhead = NonceBytes + TagBytes;

    /// <summary>Bytes of <see cref="Fingerprint"/>.</summary>
    public const int FingerprintBytes = 16;

    private readonly AesGcm _aes;

    /// <summary>Uses a 256-bit key.</summary>
    /// <param name="key">32 bytes (copied).</param>
    /// <exception cref="ArgumentException">The key is not 32 bytes.</exception>
    public StorageKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != 32)
        {
            throw new ArgumentException($"A storage key is 32 bytes (AES-256); this one has {key.Length}.", nameof(key));
        }

        _aes = new AesGcm(key, TagBytes);
        Fingerprint = HMACSHA256.HashData(key, Encoding.ASCII.GetBytes("LiveLearning storage key fingerprint v1"))[..FingerprintBytes];
    }

    /// <summary>Identifies the key without revealing it (what files record to recognise a wrong key).</summary>
    public ReadOnlyMemory<byte> Fingerprint { get; }

    /// <summary>A new random key (for tests and first set-up; keep it somewhere safer than beside the data).</summary>
    /// <returns>32 random bytes.</returns>
    public static byte[] NewKey() => RandomNumberGenerator.GetBytes(32);

    /// <summary>Seals <paramref name="plaintext"/>: nonce ‖ ciphertext ‖ tag.</summary>
    /// <param name="plaintext">The data.</param>
    /// <param name="associated">Data bound to the message without being encrypted (e.g. its sequence number), or empty.</param>
    /// <returns>The sealed bytes (<see cref="Overhead"/> longer).</returns>
    public byte[] Seal(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associated = default)
    {
        var sealedBytes = new byte[plaintext.Length + Overhead];
        Span<byte> nonce = sealedBytes.AsSpan(0, NonceBytes);
        RandomNumberGenerator.Fill(nonce);
        _aes.Encrypt(nonce, plaintext, sealedBytes.AsSpan(NonceBytes, plaintext.Length), sealedBytes.AsSpan(NonceBytes + plaintext.Length), associated);
        return sealedBytes;
    }

    /// <summary>Opens what <see cref="Seal"/> produced.</summary>
    /// <param name="sealedBytes">nonce ‖ ciphertext ‖ tag.</param>
    /// <param name="associated">The associated data it was sealed with.</param>
    /// <returns>The plaintext, or <see langword="null"/> when the bytes were changed or sealed under another key.</returns>
    public byte[]? TryOpen(ReadOnlySpan<byte> sealedBytes, ReadOnlySpan<byte> associated = default)
    {
        if (sealedBytes.Length < Overhead)
        {
            return null;
        }

        var plaintext = new byte[sealedBytes.Length - Overhead];
        try
        {
            _aes.Decrypt(sealedBytes[..NonceBytes], sealedBytes.Slice(NonceBytes, plaintext.Length), sealedBytes[^TagBytes..], plaintext, associated);
            return plaintext;
        }
        catch (AuthenticationTagMismatchException)
        {
            return null;
        }
    }

    /// <summary>Whether <paramref name="fingerprint"/> is this key's.</summary>
    /// <param name="fingerprint">A recorded fingerprint.</param>
    /// <returns>True when it matches.</returns>
    public bool Matches(ReadOnlySpan<byte> fingerprint) => CryptographicOperations.FixedTimeEquals(fingerprint, Fingerprint.Span);

    /// <inheritdoc />
    public void Dispose() => _aes.Dispose();
}
