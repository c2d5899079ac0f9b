import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An Ed25519 signing key.
///
/// Key file format: one line holding the base64 encoding of the 32-byte raw Ed25519 private key (the seed), written
/// with mode 0600. The same base64 text may be supplied in the `AUTOGLM_SIGNING_KEY` environment variable.
/// The private key is never printed; only the public key (base64 of its 32 raw bytes) is shown.
public struct SigningKey {
    public static let environmentVariable = "AUTOGLM_SIGNING_KEY"

    let key: Curve25519.Signing.PrivateKey

    public init() { key = Curve25519.Signing.PrivateKey() }

    /// Parses the base64 text of a raw private key; `source` names where it came from in errors.
    public init(base64 text: String, source: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw SignoffError.badKey(source: source, reason: "empty") }
        guard let raw = Data(base64Encoded: trimmed) else {
            throw SignoffError.badKey(source: source, reason: "expected base64 text of a 32-byte Ed25519 private key")
        }
        guard raw.count == 32 else {
            throw SignoffError.badKey(
                source: source, reason: "expected a 32-byte Ed25519 private key, the base64 decodes to \(raw.count) bytes")
        }
        do {
            key = try Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        } catch {
            throw SignoffError.badKey(source: source, reason: "not an Ed25519 private key")
        }
    }

    /// Loads a key file. Warns (through `warn`) when the file is readable by group or others.
    public static func load(file path: String, warn: (String) -> Void = { _ in }) throws -> SigningKey {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SignoffError.badKey(source: path, reason: "cannot read the file")
        }
        if let attrs = try? FileManager.default.attributesOfItem(atPath: path),
           let mode = (attrs[.posixPermissions] as? NSNumber)?.intValue, mode & 0o077 != 0 {
            warn("warning: key file \(path) has mode \(String(mode, radix: 8)); it should be 0600")
        }
        return try SigningKey(base64: text, source: path)
    }

    /// The key from `file` if given, else from `AUTOGLM_SIGNING_KEY`, else nil.
    public static func resolve(
        file: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
        warn: (String) -> Void = { _ in }
    ) throws -> SigningKey? {
        if let file { return try load(file: file, warn: warn) }
        if let text = environment[environmentVariable] {
            return try SigningKey(base64: text, source: "environment variable \(environmentVariable)")
        }
        return nil
    }

    /// Base64 of the raw 32-byte public key.
    public var publicKeyBase64: String { key.publicKey.rawRepresentation.base64EncodedString() }

    /// Writes the key file with mode 0600, refusing to replace an existing file.
    public func write(to path: String) throws {
        let text = key.rawRepresentation.base64EncodedString() + "\n"
        try FileIO.createExclusively(path: path, data: Data(text.utf8), mode: 0o600)
    }

    public func signature(for data: Data) throws -> Data { try key.signature(for: data) }
}

/// Checks Ed25519 signatures against a base64 public key.
public enum SignatureCheck {
    public static func isValid(signatureBase64: String, data: Data, publicKeyBase64: String) -> Bool {
        guard let raw = Data(base64Encoded: publicKeyBase64), raw.count == 32,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw),
              let sig = Data(base64Encoded: signatureBase64)
        else { return false }
        return key.isValidSignature(sig, for: data)
    }
}

/// File helpers: streaming SHA-256 and exclusive creation.
public enum FileIO {
    /// SHA-256 (lowercase hex) and size of a file, read in 1 MiB pieces through one buffer (the engine hashes its
    /// checkpoint inside the process whose peak memory it reports, so the hash must not leave buffers behind).
    public static func sha256(file path: String) throws -> (hex: String, bytes: Int) {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            let reason = errno == ENOENT ? "no such file" : String(cString: strerror(errno))
            throw SignoffError.unreadable(file: path, reason: reason)
        }
        defer { close(fd) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { buffer.deallocate() }
        var hasher = SHA256()
        var total = 0
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw SignoffError.unreadable(file: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            total += n
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return (hex(hasher.finalize()), total)
    }

    public static func sha256(_ data: Data) -> String { hex(SHA256.hash(data: data)) }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest { out.append(digits[Int(byte >> 4)]); out.append(digits[Int(byte & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Creates `path` with `data`, failing if anything already exists there (O_CREAT | O_EXCL).
    public static func createExclusively(path: String, data: Data, mode: mode_t = 0o644) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
        if fd < 0 {
            let err = errno
            if err == EEXIST { throw SignoffError.unwritable(file: path, reason: "file exists; refusing to overwrite") }
            throw SignoffError.unwritable(file: path, reason: String(cString: strerror(err)))
        }
        defer { close(fd) }
        // The mode passed to open() is filtered by the umask; set it exactly.
        fchmod(fd, mode)
        var offset = 0
        let ok = data.withUnsafeBytes { buf -> Bool in
            guard let base = buf.baseAddress else { return true }
            while offset < buf.count {
                let n = write(fd, base + offset, buf.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
        if !ok { throw SignoffError.unwritable(file: path, reason: String(cString: strerror(errno))) }
    }

    /// Writes a report output file (JUnit, HTML, Markdown), replacing an earlier one.
    public static func writeOutput(_ text: String, to path: String) throws {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw SignoffError.unwritable(file: path, reason: (error as NSError).localizedDescription)
        }
    }
}
