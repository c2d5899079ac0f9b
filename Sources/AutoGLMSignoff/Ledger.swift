import AutoGLMSpecs
import Foundation

/// An append-only folder of sign-off records, one JSON file each, named `<UTC timestamp>-<12 hex of SHA-256>.json`.
/// Files are created exclusively: an existing name is never overwritten.
public struct Ledger: Sendable {
    public var directory: String

    public init(directory: String) { self.directory = SignoffInputs.absolute(directory) }

    /// The file name for a record: the creation time (`yyyyMMddTHHmmssZ`) and the first 12 hex digits of the
    /// SHA-256 of its signed bytes.
    public static func fileName(for record: SignoffRecord) throws -> String {
        let stamp = record.createdAt.filter { $0.isNumber || $0 == "T" || $0 == "Z" }
        let hash = FileIO.sha256(try record.signedBytes()).prefix(12)
        return "\(stamp)-\(hash).json"
    }

    /// Creates the folder if needed.
    public func prepare() throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
            guard isDir.boolValue else { throw SignoffError.ledger(path: directory, reason: "exists and is not a folder") }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw SignoffError.ledger(path: directory, reason: "cannot create: \((error as NSError).localizedDescription)")
        }
    }

    /// Writes `record` as a new file; returns its path. Refuses if the name is taken.
    @discardableResult
    public func append(_ record: SignoffRecord) throws -> String {
        try prepare()
        let path = directory + "/" + (try Ledger.fileName(for: record))
        do {
            try FileIO.createExclusively(path: path, data: try SpecLoader.encode(record))
        } catch SignoffError.unwritable(_, let reason) {
            throw SignoffError.ledger(path: directory, reason: "\(path): \(reason)")
        }
        return path
    }

    /// One ledger entry: a record, or why its file could not be read.
    public struct Entry: Sendable {
        public var file: String
        public var record: SignoffRecord?
        public var error: String?
    }

    /// Every `.json` file in the folder, oldest first (file names start with the timestamp).
    public func entries() throws -> [Entry] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw SignoffError.ledger(path: directory, reason: "no such folder")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw SignoffError.ledger(path: directory, reason: (error as NSError).localizedDescription)
        }
        return names.filter { $0.hasSuffix(".json") }.sorted().map { name in
            let path = directory + "/" + name
            do {
                return Entry(file: path, record: try SignoffRecord.load(path), error: nil)
            } catch {
                return Entry(file: path, record: nil, error: "\(error)")
            }
        }
    }
}
