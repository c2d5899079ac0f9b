import Foundation
import Testing
import AutoGLMSpecs

/// `autoglm-run bench-attention` and `calibrate-attention` at sizes that take seconds. Speed is printed, never
/// asserted; memory figures are exact accounting and are checked.
@Suite("autoglm-run bench-attention and calibrate-attention")
struct BenchAttentionCLITests {
    /// bench-attention options for decoder rows measured once each, quickly, on the plain roofline.
    static func quickRows(lengths: String, modes: String) -> [String] {
        ["--lengths", lengths, "--modes", modes, "--repetitions", "1", "--rounds", "1", "--min-time", "0",
         "--threads", "2", "--calibration", "/nonexistent/calibration.json"]
    }

    /// bench-attention --json for `settings` with `options`, expected to succeed: its JSON.
    static func benchJSON(settings: String, _ options: [String]) throws -> [String: Any] {
        let r = try run(["bench-attention", "--settings", settings, "--json"] + options)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        return try json(r.stdout)
    }

    static func run(_ arguments: [String]) throws -> CLITool.Output {
        try CLITool.run("autoglm-run", arguments, currentDirectory: CLITool.packageRoot)
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test("--vit rows: tiled and materialised per patch count, scratch as predicted, resident growth of a fresh process")
    func vitRows() throws {
        let r = try Self.run(["bench-attention", "--vit", "--patches", "64,512", "--repetitions", "1", "--threads", "2",
                              "--calibration", "/nonexistent/calibration.json", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("no time calibration"))
        let table = try Self.json(r.stdout)
        #expect(table["shape"] as? String == "vit")
        let rows = try #require(table["rows"] as? [[String: Any]])
        #expect(rows.map { $0["setting"] as? String ?? "" } == ["vit tiled", "vit materialised", "vit tiled",
                                                                 "vit materialised"])
        // One worker's buffers for 32 lanes of head_dim 128.
        let floats = 2 * 32 * 128 + 3 * 32 + 64 * 32 + 128 * 32 + 2 * 64 * 128 + 1
        let worker = floats * 4 + 2 * 32 * 4 + (32 * 2 * 2 + 32 + 32 + 1) * 8
        for row in rows {
            #expect(row["mode"] as? String == "encode")
            let n = try #require(row["length"] as? Int)
            let measured = try #require(row["measured"] as? [String: Any])
            let predicted = try #require(row["predicted"] as? [String: Any])
            let scratch = try #require(measured["scratch_bytes"] as? Int)
            #expect(scratch == predicted["scratch_bytes"] as? Int)
            let materialised = (row["setting"] as? String) == "vit materialised"
            #expect(scratch == (materialised ? 2 * (n * n * 4 + worker) : 2 * worker))
            let operands = try #require(measured["operand_bytes"] as? Int)
            #expect(operands == 4 * n * 128 * 48)
            #expect(predicted["working_set_bytes"] as? Int == operands + scratch)
            // Each measurement runs in its own process, so what it touched shows in its peak resident set.
            if let growth = measured["resident_growth_bytes"] as? Int {
                #expect(growth >= operands + scratch - (1 << 20))
            }
        }
        let notes = try #require(table["notes"] as? [String])
        #expect(notes.count == 2 && notes[1].contains("512 patches"))
        let summary = try #require(table["summary"] as? [String: Any])
        #expect(summary["memory_within_5_percent"] as? Int == 4)
    }

    @Test("calibrate-attention writes a fit per key with its points and provenance; bench-attention applies it")
    func calibrateThenBench() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("calibrate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("calibration.json").path
        let c = try Self.run(["calibrate-attention", "--lengths", "32,64,128", "--decode-lengths", "256",
                              "--prefill-lengths", "192", "--patches", "32,64", "--repetitions", "1", "--threads", "2",
                              "--cold-lengths", "64,128", "-o", file])
        #expect(c.status == 0, "stderr: \(c.stderr)")
        let written = try Self.json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: file)), as: UTF8.self))
        let fits = try #require(written["fits"] as? [[String: Any]])
        // Four KV formats tiled and F32 materialised, prefill and decode; both kernels for the ViT.
        #expect(fits.count == 12)
        let source = try #require(written["source"] as? String)
        #expect(source.hasPrefix("measured: autoglm-run calibrate-attention") && source.contains("load average"))
        #expect(source.contains("F32 tiled prefill also at 192 (one call each)"))
        // Where it was measured, for bench-attention to compare with its own run.
        #expect(["avx512", "simd8"].contains(written["kernels"] as? String ?? ""))
        #expect(!(written["cpu"] as? String ?? "").isEmpty)
        for f in fits {
            let fit = try #require(f["fit"] as? [String: Any])
            #expect((fit["scale"] as? Double ?? 0) > 0)
            // Decode also at the decode-only length, F32 tiled prefill at the prefill-only one.
            let mode = f["mode"] as? String
            let longPrefill = mode == "prefill" && f["kv"] as? String == "f32" && f["kernel"] as? String == "tiled"
            #expect((fit["points"] as? [Any])?.count
                    == (mode == "encode" ? 2 : mode == "decode" ? 4 : longPrefill ? 4 : 3))
            // Decode keys also carry their cold points (K/V flushed before each call) and the factor fitted on them.
            #expect((fit["cold_points"] as? [Any])?.count == (mode == "decode" ? 2 : nil))
            #expect(mode == "decode" ? (fit["cold_spill"] as? Double ?? -1) >= 0 : fit["cold_spill"] == nil)
        }
        #expect(source.contains("; cold decode (the layer's K/V flushed") && source.contains("at 64, 128 tokens"))
        #expect(source.contains("times divided by ×") && source.contains("warm F32 decode measured in the same passes"))
        #expect(c.stdout.contains("warm F32 decode measured beside the cold points at ×"))
        // No block-sparse decode point at these lengths (every block chosen); --block-sparse-only adds them to the
        // same file, its fits kept.
        #expect(written["block_sparse_decode"] == nil)
        // Nor a block-sparse prefill factor: at 192 tokens no prefill reads beyond the cache share.
        #expect(written["block_sparse_prefill"] == nil)
        let sparse = try Self.run(["calibrate-attention", "--block-sparse-only", "--lengths", "640,1024",
                                   "--decode-lengths", "", "--prefill-lengths", "", "--repetitions", "1", "--rounds",
                                   "1", "--min-time", "0", "--threads", "2", "-o", file])
        #expect(sparse.status == 0, "stderr: \(sparse.stderr)")
        // Block-sparse prefill's own beyond-cache factor, on a copy whose cache share is 64 KiB (so that 256 tokens'
        // K/V go beyond it): both settings' points, the factor, its words in the source.
        var small = written
        small["cache_bytes"] = 65536
        let smallFile = dir.appendingPathComponent("small-cache.json").path
        try JSONSerialization.data(withJSONObject: small).write(to: URL(fileURLWithPath: smallFile))
        let sparsePrefill = try Self.run(["calibrate-attention", "--block-sparse-only", "--lengths", "640",
                                          "--decode-lengths", "", "--prefill-lengths", "256", "--repetitions", "1",
                                          "--rounds", "1", "--min-time", "0", "--threads", "2", "-o", smallFile])
        #expect(sparsePrefill.status == 0, "stderr: \(sparsePrefill.stderr)")
        let smallWritten = try Self.json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: smallFile)),
                                                as: UTF8.self))
        let prefillFactor = try #require(smallWritten["block_sparse_prefill"] as? [String: Any])
        #expect((prefillFactor["spill"] as? Double ?? -1) >= 0 && (prefillFactor["points"] as? [Any])?.count == 3)
        let smallSource = smallWritten["source"] as? String ?? ""
        #expect(smallSource.contains("; block-sparse prefill (F32, 128/4 at 640, 256; 1024/4 at 256 tokens"))
        #expect(smallSource.contains("full F32 prefill measured in the same passes over its fit"))
        #expect(sparsePrefill.stdout.contains("full prefill measured beside them at ×"))
        #expect((prefillFactor["rate"] as? Double ?? 0) > 0)
        // The wide tile timed at every lane count of a SmolLM2 work item (10 rows × 3 heads) and its vector share.
        let vectorShare = try #require(prefillFactor["tile_vector_share"] as? Double)
        #expect(vectorShare >= 0 && vectorShare <= 1)
        let tileTimes = try #require(prefillFactor["tile_times"] as? [[String: Any]])
        #expect(tileTimes.compactMap { $0["lanes"] as? Int } == Array(1...30))
        #expect(smallSource.contains("the wide tile's cost") && smallSource.contains("(timed at 1 to 30 lanes"))
        // Block-sparse prefill alone: block-sparse decode's constants and the fits stay as they were; without a long
        // prefill length nothing is fitted and the file is left as it was.
        let prefillOnly = try Self.run(["calibrate-attention", "--block-sparse-prefill-only", "--lengths", "640",
                                        "--prefill-lengths", "256", "--repetitions", "1", "--rounds", "1",
                                        "--min-time", "0", "--threads", "2", "-o", smallFile])
        #expect(prefillOnly.status == 0, "stderr: \(prefillOnly.stderr)")
        let prefillOnlyText = try String(contentsOfFile: smallFile, encoding: .utf8)
        let prefillOnlyWritten = try Self.json(prefillOnlyText)
        #expect(NSDictionary(dictionary: prefillOnlyWritten["block_sparse_decode"] as? [String: Any] ?? [:])
                == NSDictionary(dictionary: smallWritten["block_sparse_decode"] as? [String: Any] ?? ["none": 0]))
        #expect((prefillOnlyWritten["fits"] as? [Any])?.count == (smallWritten["fits"] as? [Any])?.count)
        #expect((prefillOnlyWritten["block_sparse_prefill"] as? [String: Any])?["points"] as? [Any] != nil)
        #expect(prefillOnlyWritten["source"] as? String != smallSource)
        // The fit priced its points as bench-attention prices the same row (the tile width of this machine's
        // kernels: 16 lanes on the AVX-512 family, where the 8-lane default once priced other work).
        let point = try #require(((prefillOnlyWritten["block_sparse_prefill"] as? [String: Any])?["points"]
            as? [[String: Any]])?.first { $0["chunk"] as? Int == 128 && $0["length"] as? Int == 640 })
        let priced = try Self.benchJSON(settings: "block-sparse:128/4",
                                        Self.quickRows(lengths: "640", modes: "prefill").dropLast(2)
                                            + ["--calibration", smallFile])
        let row = try #require((priced["rows"] as? [[String: Any]])?.first)
        let benchSeconds = try #require((row["predicted"] as? [String: Any])?["seconds"] as? Double)
        let fitSeconds = try #require(point["predicted_seconds"] as? Double)
        #expect(abs(benchSeconds / fitSeconds - 1) < 1e-9, "bench \(benchSeconds) s, fit \(fitSeconds) s")
        let noLong = try Self.run(["calibrate-attention", "--block-sparse-prefill-only", "--lengths", "640",
                                   "--prefill-lengths", "", "--repetitions", "1", "--rounds", "1", "--min-time", "0",
                                   "--threads", "2", "-o", smallFile])
        #expect(noLong.status != 0 && noLong.stderr.contains("--prefill-lengths"), "stderr: \(noLong.stderr)")
        #expect(try String(contentsOfFile: smallFile, encoding: .utf8) == prefillOnlyText)
        let twoParts = try Self.run(["calibrate-attention", "--block-sparse-prefill-only", "--block-sparse-only",
                                     "-o", smallFile])
        #expect(twoParts.status != 0 && twoParts.stderr.contains("give one"))
        let refitted = try Self.json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: file)), as: UTF8.self))
        #expect((refitted["fits"] as? [[String: Any]])?.count == 12)
        let blockSparse = try #require(refitted["block_sparse_decode"] as? [String: Any])
        let share = try #require(blockSparse["share"] as? Double)
        #expect(share >= 0 && share <= 1 && (blockSparse["score_seconds"] as? Double ?? -1) >= 0)
        #expect((blockSparse["points"] as? [Any])?.count == 10)
        // The cache share the union of the chosen blocks stays in (one of the last-level cache's tried shares), or
        // none where the earlier model fitted better; the source says which.
        let refittedSource = refitted["source"] as? String ?? ""
        if let held = blockSparse["cache_bytes"] as? Int {
            #expect(held > 0 && refittedSource.contains("the union of the chosen blocks held in"))
        } else {
            #expect(refittedSource.contains("the lane share scaled by the part of the union the private caches hold"))
        }
        #expect((refitted["source"] as? String ?? "")
                    .contains("block-sparse decode (128/4, 32/16, 256/4, 512/4 and 1024/4")
                && (refitted["source"] as? String ?? "").contains("measured separately"))
        #expect((refitted["source"] as? String ?? "").contains("full F32 decode measured in the same passes"))
        // Lengths where every block is chosen leave nothing to fit: refused, the file as it was.
        let before = try Data(contentsOf: URL(fileURLWithPath: file))
        let nothing = try Self.run(["calibrate-attention", "--block-sparse-only", "--lengths", "64", "--decode-lengths",
                                    "", "--repetitions", "1", "--rounds", "1", "--min-time", "0", "--threads", "2",
                                    "-o", file])
        #expect(nothing.status != 0 && nothing.stderr.contains("above 512 tokens"), "stderr: \(nothing.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == before)
        // The roofline the fits correct is recorded; a partial run against a profile whose roofline differs (measured
        // again since) is refused and leaves the file as it was.
        let roofline = try #require(written["roofline"] as? [String: Any])
        #expect((roofline["bandwidth_bytes_per_second"] as? Double ?? 0) > 0 && roofline["profile"] is String)
        var stale = try Self.json(String(decoding: before, as: UTF8.self))
        stale["roofline"] = roofline.merging(["bandwidth_bytes_per_second": 1e9]) { $1 }
        let staleFile = dir.appendingPathComponent("stale.json").path
        let staleData = try JSONSerialization.data(withJSONObject: stale)
        try staleData.write(to: URL(fileURLWithPath: staleFile))
        let refused = try Self.run(["calibrate-attention", "--block-sparse-only", "--lengths", "640",
                                    "--decode-lengths", "", "--repetitions", "1", "--rounds", "1", "--min-time", "0",
                                    "--threads", "2", "-o", staleFile])
        #expect(refused.status != 0 && refused.stderr.contains("measured again since"), "stderr: \(refused.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: staleFile)) == staleData)
        let missing = try Self.run(["calibrate-attention", "--block-sparse-only", "-o", dir.appendingPathComponent("none.json").path])
        #expect(missing.status != 0 && missing.stderr.contains("none.json"), "stderr: \(missing.stderr)")
        // --materialised-only measures the materialised kernel's points again and keeps the other nine fits, the cache
        // shares and the block-sparse constants.
        func tiledFits(_ json: [String: Any]) -> [String: NSDictionary] {
            var out: [String: NSDictionary] = [:]
            for f in json["fits"] as? [[String: Any]] ?? [] where f["kernel"] as? String == "tiled" {
                out["\(f["kv"] ?? "") \(f["mode"] ?? "")"] = f as NSDictionary
            }
            return out
        }
        let materialised = try Self.run(["calibrate-attention", "--materialised-only", "--lengths", "40,80",
                                         "--decode-lengths", "", "--patches", "48,96", "--repetitions", "1",
                                         "--encode-repetitions", "1", "--rounds", "1", "--min-time", "0",
                                         "--threads", "2", "-o", file])
        #expect(materialised.status == 0, "stderr: \(materialised.stderr)")
        let rematerialised = try Self.json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: file)),
                                                  as: UTF8.self))
        let newFits = try #require(rematerialised["fits"] as? [[String: Any]])
        #expect(newFits.count == 12 && tiledFits(refitted).count == 9)
        #expect(tiledFits(rematerialised) == tiledFits(refitted))
        for f in newFits where f["kernel"] as? String == "materialised" {
            #expect(((f["fit"] as? [String: Any])?["points"] as? [Any])?.count == 2, "\(f["mode"] ?? "")")
        }
        #expect((rematerialised["block_sparse_decode"] as? NSDictionary) == (blockSparse as NSDictionary))
        #expect(rematerialised["cache_bytes"] as? Int == refitted["cache_bytes"] as? Int)
        let both = rematerialised["source"] as? String ?? ""
        #expect(both.contains("; materialised kernel refitted") && both.contains("measured separately"))
        // --encode-only measures both kernels' ViT points again and keeps every decoder fit and the cache shares.
        func fitsByMode(_ json: [String: Any], encode: Bool) -> [String: NSDictionary] {
            var out: [String: NSDictionary] = [:]
            for f in json["fits"] as? [[String: Any]] ?? [] where (f["mode"] as? String == "encode") == encode {
                out["\(f["kv"] ?? "") \(f["kernel"] ?? "") \(f["mode"] ?? "")"] = f as NSDictionary
            }
            return out
        }
        let encode = try Self.run(["calibrate-attention", "--encode-only", "--patches", "40,80", "--encode-repetitions",
                                   "1", "--rounds", "1", "--threads", "2", "-o", file])
        #expect(encode.status == 0, "stderr: \(encode.stderr)")
        let reencoded = try Self.json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: file)), as: UTF8.self))
        #expect(fitsByMode(reencoded, encode: false) == fitsByMode(rematerialised, encode: false))
        #expect(fitsByMode(reencoded, encode: true).count == 2)
        for (key, fit) in fitsByMode(reencoded, encode: true) {
            let points = (fit["fit"] as? [String: Any])?["points"] as? [[String: Any]] ?? []
            #expect(points.compactMap { $0["length"] as? Int } == [40, 80], "\(key): \(points)")
        }
        #expect(reencoded["cache_bytes"] as? Int == rematerialised["cache_bytes"] as? Int)
        #expect((reencoded["block_sparse_decode"] as? NSDictionary) == (blockSparse as NSDictionary))
        let encodeSource = reencoded["source"] as? String ?? ""
        #expect(encodeSource.contains("; encode refitted"))
        // The encode times are paced by F32 tiled prefill measured in the same passes, against its kept fit.
        #expect(encodeSource.contains("F32 tiled prefill at 96, 192, 384, 768, 1536, 3072 tokens measured in the same "
                                      + "passes over its fit"), "\(encodeSource)")
        let prefix = "encode times divided by ×"
        let paceLine = try #require(encode.stdout.split(separator: "\n").first { $0.hasPrefix(prefix) })
        let pace = try #require(Double(paceLine.dropFirst(prefix.count).prefix(5)))
        #expect(pace > 0.2 && pace < 5, "\(paceLine)")
        #expect(encodeSource.contains(String(format: "times divided by ×%.3f", pace)))
        let encodedData = try Data(contentsOf: URL(fileURLWithPath: file))
        let noPatches = try Self.run(["calibrate-attention", "--encode-only", "--vit-model", "", "-o", file])
        #expect(noPatches.status != 0 && noPatches.stderr.contains("--patches"), "stderr: \(noPatches.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: file)) == encodedData)
        let two = try Self.run(["calibrate-attention", "--materialised-only", "--block-sparse-only", "-o", file])
        #expect(two.status != 0 && two.stderr.contains("give one"), "stderr: \(two.stderr)")
        // --decode-only measures every decode point again (five keys) and refits block-sparse decode's constants;
        // the prefill and encode fits and the cache shares are kept, prefill's borrowed beyond-cache factor named
        // as fitted before.
        func fitsByKey(_ json: [String: Any], decode: Bool) -> [String: NSDictionary] {
            var out: [String: NSDictionary] = [:]
            for f in json["fits"] as? [[String: Any]] ?? [] where (f["mode"] as? String == "decode") == decode {
                out["\(f["kv"] ?? "") \(f["kernel"] ?? "") \(f["mode"] ?? "")"] = f as NSDictionary
            }
            return out
        }
        let decodeRefit = try Self.run(["calibrate-attention", "--decode-only", "--lengths", "40,80,640,1024",
                                        "--decode-lengths", "", "--repetitions", "1", "--rounds", "1", "--min-time",
                                        "0", "--threads", "2", "--cold-lengths", "64", "-o", file])
        #expect(decodeRefit.status == 0, "stderr: \(decodeRefit.stderr)")
        let redecoded = try Self.json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: file)), as: UTF8.self))
        #expect(fitsByKey(redecoded, decode: false).count == 7 && fitsByKey(redecoded, decode: true).count == 5)
        for (key, fit) in fitsByKey(redecoded, decode: false) {
            let before = try #require(fitsByKey(reencoded, decode: false)[key])
            let (a, b) = (fit["fit"] as? [String: Any] ?? [:], before["fit"] as? [String: Any] ?? [:])
            #expect((a["points"] as? NSArray) == (b["points"] as? NSArray), "\(key)")
            #expect(a["spill"] as? Double == b["spill"] as? Double, "\(key)")
            // A factor borrowed from a decode fit says it predates the refit; one borrowed from prefill is unchanged.
            if let from = b["spill_from"] as? String {
                let expected = from.hasSuffix(" decode") ? from + " as fitted before the decode refit" : from
                #expect((a["spill_from"] as? String)?.hasPrefix(expected) == true, "\(key)")
            }
        }
        for (key, fit) in fitsByKey(redecoded, decode: true) {
            #expect(((fit["fit"] as? [String: Any])?["points"] as? [Any])?.count == 4, "\(key)")
            #expect(((fit["fit"] as? [String: Any])?["cold_points"] as? [Any])?.count == 1, "\(key)")
        }
        #expect((redecoded["source"] as? String ?? "").components(separatedBy: "; cold decode").count == 2)
        // --cold-decode-only measures the cold points again and keeps every other constant.
        let coldRefit = try Self.run(["calibrate-attention", "--cold-decode-only", "--cold-lengths", "96,192",
                                      "--repetitions", "1", "--rounds", "1", "--min-time", "0", "--threads", "2",
                                      "-o", file])
        #expect(coldRefit.status == 0, "stderr: \(coldRefit.stderr)")
        let recold = try Self.json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: file)), as: UTF8.self))
        for (key, fit) in fitsByKey(recold, decode: true) {
            let f = fit["fit"] as? [String: Any] ?? [:]
            let lengths = (f["cold_points"] as? [[String: Any]] ?? []).compactMap { $0["length"] as? Int }
            #expect(lengths == [96, 192], "\(key)")
            let old = fitsByKey(redecoded, decode: true)[key]?["fit"] as? [String: Any] ?? [:]
            #expect((f["points"] as? NSArray) == (old["points"] as? NSArray) && f["scale"] as? Double == old["scale"]
                    as? Double, "\(key)")
        }
        #expect(fitsByKey(recold, decode: false) == fitsByKey(redecoded, decode: false))
        let recoldSource = recold["source"] as? String ?? ""
        #expect(recoldSource.components(separatedBy: "; cold decode").count == 2
                && recoldSource.contains("at 96, 192 tokens") && recoldSource.contains("measured separately"))
        #expect(redecoded["cache_bytes"] as? Int == rematerialised["cache_bytes"] as? Int)
        // Block-sparse decode at every length (two of the four leave blocks out), all five settings; its rate and
        // its cold-sweep factor (fitted on the cold lengths) beside the lane share.
        let sparseDecode = try #require(redecoded["block_sparse_decode"] as? [String: Any])
        #expect((sparseDecode["points"] as? [Any])?.count == 20)
        #expect((sparseDecode["rate"] as? Double ?? 0) > 0 && (sparseDecode["cold_spill"] as? Double ?? -1) >= 0)
        #expect(((recold["block_sparse_decode"] as? [String: Any])?["cold_spill"] as? Double ?? -1) >= 0)
        let redecodedSource = redecoded["source"] as? String ?? ""
        #expect(redecodedSource.contains("; decode refitted on") && redecodedSource.contains("; materialised kernel")
                && redecodedSource.components(separatedBy: "; block-sparse decode").count == 2)
        // --block-sparse-only refits block-sparse decode's constants on a copy and keeps its cold-sweep factor (the
        // cold points are not measured again).
        let coldFactor = try #require((recold["block_sparse_decode"] as? [String: Any])?["cold_spill"] as? Double)
        let copy = dir.appendingPathComponent("sparse-refit.json").path
        try FileManager.default.copyItem(atPath: file, toPath: copy)
        let keep = try Self.run(["calibrate-attention", "--block-sparse-only", "--lengths", "640", "--decode-lengths",
                                 "", "--prefill-lengths", "", "--repetitions", "1", "--rounds", "1", "--min-time", "0",
                                 "--threads", "2", "-o", copy])
        #expect(keep.status == 0, "stderr: \(keep.stderr)")
        let kept = try Self.json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: copy)), as: UTF8.self))
        #expect((kept["block_sparse_decode"] as? [String: Any])?["cold_spill"] as? Double == coldFactor)
        let b = try Self.run(["bench-attention", "--lengths", "48", "--repetitions", "1", "--threads", "2",
                              "--calibration", file, "--json"])
        #expect(b.status == 0, "stderr: \(b.stderr)")
        let table = try Self.json(b.stdout)
        #expect((table["calibration"] as? String)?.hasPrefix("measured: autoglm-run calibrate-attention") == true)
        let rows = try #require(table["rows"] as? [[String: Any]])
        #expect(rows.count == 14)
        // Three passes (the default): every row keeps each pass's figure, slowest first, and shows the median one.
        for row in rows {
            let measured = try #require(row["measured"] as? [String: Any])
            let passes = try #require(measured["pass_tokens_per_second"] as? [Double])
            #expect(passes.count == 3 && passes == passes.sorted())
            #expect(measured["tokens_per_second"] as? Double == passes[1])
        }
        let summary = try #require(table["summary"] as? [String: Any])
        #expect(summary["memory_rows"] as? Int == 14 && summary["speed_rows"] as? Int == 14)
        let within = try #require(summary["speed_within_15_percent"] as? Int)
        let withinAPass = try #require(summary["speed_within_15_percent_of_a_pass"] as? Int)
        let spread = try #require(summary["speed_pass_spread_over_15_percent"] as? Int)
        #expect(within <= withinAPass && withinAPass <= 14 && spread <= 14)
        // Decode with the layer's K/V flushed before each call, as in a model: said in the title, memory unchanged.
        let cold = try Self.run(["bench-attention", "--lengths", "48", "--modes", "decode", "--settings", "full",
                                 "--repetitions", "1", "--threads", "2", "--calibration", file, "--cold-kv", "--json"])
        #expect(cold.status == 0, "stderr: \(cold.stderr)")
        let coldTable = try Self.json(cold.stdout)
        #expect((coldTable["title"] as? String ?? "").contains("flushed from the caches"))
        #expect(((coldTable["rows"] as? [[String: Any]])?.count) == 1)
        // One mode alone; an unknown mode is refused.
        let decodeOnly = try Self.run(["bench-attention", "--lengths", "48", "--repetitions", "1", "--threads", "2",
                                       "--calibration", file, "--modes", "decode", "--json"])
        #expect(decodeOnly.status == 0, "stderr: \(decodeOnly.stderr)")
        let decodeRows = try #require(try Self.json(decodeOnly.stdout)["rows"] as? [[String: Any]])
        #expect(decodeRows.count == 7 && decodeRows.allSatisfy { $0["mode"] as? String == "decode" })
        let badMode = try Self.run(["bench-attention", "--lengths", "48", "--modes", "encode"])
        #expect(badMode.status != 0 && badMode.stderr.contains("--modes: expected prefill or decode, got 'encode'"))
        // Text output carries the same count line.
        let text = try Self.run(["bench-attention", "--lengths", "48", "--repetitions", "1", "--threads", "2",
                                 "--calibration", file])
        #expect(text.status == 0)
        #expect(text.stdout.contains("memory within ±5%:") && text.stdout.contains("load average"))
        #expect(text.stdout.contains("spread%") && text.stdout.contains("(of a pass: "))
        #expect(!text.stderr.contains("warning"), "stderr: \(text.stderr)")
        // The same file said to come from the other kernel family: the run is warned, and still measures.
        var other = written
        other["kernels"] = (written["kernels"] as? String) == "simd8" ? "avx512" : "simd8"
        let otherFile = dir.appendingPathComponent("other.json").path
        try JSONSerialization.data(withJSONObject: other).write(to: URL(fileURLWithPath: otherFile))
        let warned = try Self.run(["bench-attention", "--lengths", "48", "--repetitions", "1", "--threads", "2",
                                   "--settings", "full", "--calibration", otherFile])
        #expect(warned.status == 0)
        #expect(warned.stderr.contains("warning") && warned.stderr.contains("kernels, this run"), "stderr: \(warned.stderr)")
        // A second calibration beside the first on the same measurements: each row carries the prediction that the
        // file alone gives (the run above), and its own count; the text has its column and count.
        let compared = try Self.run(["bench-attention", "--lengths", "48", "--repetitions", "1", "--threads", "2",
                                     "--calibration", "/nonexistent/calibration.json", "--compare-calibration", file,
                                     "--json"])
        #expect(compared.status == 0, "stderr: \(compared.stderr)")
        let comparedTable = try Self.json(compared.stdout)
        #expect(comparedTable["calibration"] == nil
                && (comparedTable["compared_calibration"] as? String) == table["calibration"] as? String)
        let comparedRows = try #require(comparedTable["rows"] as? [[String: Any]])
        #expect(comparedRows.count == rows.count)
        for (a, b) in zip(comparedRows, rows) {
            let other = try #require(a["compared_calibration_predicted"] as? [String: Any])
            let own = try #require(b["predicted"] as? [String: Any])
            #expect(other["seconds"] as? Double == own["seconds"] as? Double,
                    "\(a["setting"] ?? "") \(a["mode"] ?? "")")
        }
        let comparedSummary = try #require(comparedTable["summary"] as? [String: Any])
        #expect((comparedSummary["compared_speed_within_15_percent"] as? Int).map { $0 <= 14 } == true)
        #expect(summary["compared_speed_within_15_percent"] == nil)
        let comparedText = try Self.run(["bench-attention", "--lengths", "48", "--repetitions", "1", "--threads", "2",
                                         "--settings", "full", "--calibration", file, "--compare-calibration", file])
        #expect(comparedText.status == 0, "stderr: \(comparedText.stderr)")
        #expect(comparedText.stdout.contains("cmp err%") && comparedText.stdout.contains(
            "compared calibration, the same measurements: speed within ±15%:"))
        let absent = try Self.run(["bench-attention", "--lengths", "48", "--repetitions", "1", "--settings", "full",
                                    "--compare-calibration", "/nonexistent/other-calibration.json"])
        #expect(absent.status == 1 && absent.stderr.contains("other-calibration.json"), "stderr: \(absent.stderr)")
    }

    @Test("--settings picks the decoder rows by measure-attention's names")
    func chosenSettings() throws {
        let r = try Self.run(["bench-attention", "--lengths", "128", "--settings", "full,block-sparse:32/2,window:64+4",
                              "--repetitions", "1", "--rounds", "1", "--min-time", "0", "--threads", "2",
                              "--calibration", "/nonexistent/calibration.json", "--json"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let rows = try #require(try Self.json(r.stdout)["rows"] as? [[String: Any]])
        #expect(rows.map { "\($0["setting"] as? String ?? "") \($0["mode"] as? String ?? "")" } == [
            "f32 tiled prefill", "f32 tiled decode", "f32 moba 32/2 prefill", "f32 moba 32/2 decode",
            "f32 window 64+4 prefill", "f32 window 64+4 decode",
        ])
        for bad in ["moba", "block-sparse:0/2", "full,,kv:f16"] {
            let b = try Self.run(["bench-attention", "--lengths", "16", "--settings", bad])
            #expect(b.status != 0 && (b.stderr.contains("setting") || b.stderr.contains("--settings")),
                    "\(bad): \(b.stderr)")
        }
    }

    @Test("block-sparse prefill rows carry the engine's counted work beside the cost model's, against full prefill")
    func blockSparseWork() throws {
        let common = Self.quickRows(lengths: "1024", modes: "prefill")
        let json = try Self.benchJSON(settings: "full,block-sparse:32/16,block-sparse:128/4", common)
        let rows = try #require(json["rows"] as? [[String: Any]])
        #expect(rows.count == 3)
        for row in rows {
            let work = row["block_sparse_prefill_work"] as? [String: Double]
            if row["setting"] as? String == "f32 tiled" {
                #expect(work == nil)
                continue
            }
            let counted = try #require(work?["counted_fraction_of_full"]), predicted = try #require(
                work?["predicted_fraction_of_full"])
            // Blocks of 32 and 128 keys at 1,024 tokens do about 0.97 and 0.78 of full attention's work.
            #expect(counted > 0.5 && counted < 1.05, "\(row)")
            #expect(abs(predicted / counted - 1) < 0.10, "\(row)")
            let measured = try #require(row["measured"] as? [String: Any])
            #expect(measured["tokens_per_second"] != nil)
        }
        let summary = try #require(json["summary"] as? [String: Any])
        #expect(summary["block_sparse_prefill_work_rows"] as? Int == 2)
        #expect(summary["block_sparse_prefill_work_within_10_percent"] as? Int == 2)
        let text = try Self.run(["bench-attention", "--settings", "full,block-sparse:32/16"] + common)
        #expect(text.status == 0 && text.stdout.contains("block-sparse prefill work within ±10%: 1 of 1"),
                "\(text.stdout)")
        // The text line prints the JSON's count (which depends on the kernel family's vector width).
        let counted = try #require(rows.first { $0["setting"] as? String == "f32 moba 32/16" }
            .flatMap { $0["block_sparse_prefill_work"] as? [String: Double] }?["counted_fraction_of_full"])
        #expect(text.stdout.contains("f32 moba 32/16     prefill   1024   counted \(String(format: "%.3f", counted))"),
                "\(text.stdout)")
        // Without full attention beside it there is nothing to count the work against.
        let alone = try Self.run(["bench-attention", "--settings", "block-sparse:32/16", "--json"] + common)
        let aloneJSON = try Self.json(alone.stdout)
        let aloneRows = try #require(aloneJSON["rows"] as? [[String: Any]])
        #expect(aloneRows.allSatisfy { $0["block_sparse_prefill_work"] == nil })
        #expect((aloneJSON["summary"] as? [String: Any])?["block_sparse_prefill_work_rows"] == nil)
    }

    @Test("block-sparse decode rows carry the keys the engine read and the pairs it ran beside the cost model's")
    func blockSparseDecodeWork() throws {
        let common = Self.quickRows(lengths: "4096", modes: "decode")
        let rows = try #require(
            try Self.benchJSON(settings: "full,block-sparse:512/4,block-sparse:1024/4", common)["rows"]
                as? [[String: Any]])
        #expect(rows.count == 3)
        var read: [String: Double] = [:]
        for row in rows {
            let setting = row["setting"] as? String ?? ""
            let work = row["block_sparse_decode_work"] as? [String: Double]
            #expect((work == nil) == (setting == "f32 tiled"), "\(row)")
            guard let work else { continue }
            let counted = try #require(work["counted_read_fraction"])
            let predicted = try #require(work["predicted_read_fraction"])
            read[setting] = counted
            // 512/4: three of 7 earlier blocks per head, the union of three heads' about 5.7 of them.
            #expect(abs(predicted / counted - 1) < 0.15, "\(row)")
            #expect(work["counted_head_key_fraction"] == work["predicted_head_key_fraction"], "\(row)")
        }
        // 1024/4 at 4,096 tokens keeps every block: all keys read once, each by every head.
        #expect(read["f32 moba 1024/4"] == 1)
        #expect(try #require(read["f32 moba 512/4"]) < 0.95)
        let text = try Self.run(["bench-attention", "--settings", "block-sparse:1024/4"] + common)
        #expect(text.status == 0 && text.stdout.contains(
            "f32 moba 1024/4    decode    4096   read counted 1.000 predicted 1.000 err% +0.0   pairs counted 1.000"),
            "\(text.stdout)")
    }

    @Test("the run's pace: measured ÷ predicted over the full F32 tiled rows per mode, and the other rows at that pace")
    func pace() throws {
        let common = Self.quickRows(lengths: "64,128,256", modes: "prefill,decode")
        let json = try Self.benchJSON(settings: "full,kv:f16,block-sparse:32/2", common)
        let rows = try #require(json["rows"] as? [[String: Any]])
        let summary = try #require(json["summary"] as? [String: Any])
        func seconds(_ row: [String: Any], _ part: String) -> Double {
            ((row[part] as? [String: Any])?[part == "measured" ? "median_seconds" : "seconds"] as? Double) ?? .nan
        }
        var paces: [String: Double] = [:]
        for mode in ["prefill", "decode"] {
            let reference = rows.filter { $0["mode"] as? String == mode && $0["pace_reference"] as? Bool == true }
            #expect(reference.count == 3 && reference.allSatisfy { $0["setting"] as? String == "f32 tiled" })
            let ratios = reference.map { seconds($0, "measured") / seconds($0, "predicted") }.sorted()
            let pace = try #require(summary["pace_" + mode] as? Double)
            #expect(abs(pace / ratios[1] - 1) < 1e-9, "\(mode): \(pace) against \(ratios)")
            paces[mode] = pace
        }
        // The other rows, their predicted time times their mode's pace against the measured median.
        let others = rows.filter { $0["pace_reference"] as? Bool != true }
        let within = others.filter { row in
            let paced = seconds(row, "predicted") * (paces[row["mode"] as? String ?? ""] ?? .nan)
            return abs(seconds(row, "measured") / paced - 1) <= 0.15
        }
        #expect(summary["speed_rows_at_pace"] as? Int == others.count && others.count == 12)
        #expect(summary["speed_within_15_percent_at_pace"] as? Int == within.count)
        let text = try Self.run(["bench-attention", "--settings", "full,kv:f16"] + common)
        #expect(text.status == 0 && text.stdout.contains("at this run's pace (measured ÷ predicted time, median of the "
            + "full F32 tiled rows: prefill ×"), "\(text.stdout)")
        #expect(text.stdout.contains("of 6 other rows"), "\(text.stdout)")
        // Without the reference kernel's rows there is no pace.
        let alone = try Self.run(["bench-attention", "--settings", "kv:f16", "--json"] + common)
        let aloneSummary = try #require(try Self.json(alone.stdout)["summary"] as? [String: Any])
        #expect(aloneSummary["pace_prefill"] == nil && aloneSummary["speed_rows_at_pace"] == nil)
    }

    @Test("bad lists and unreadable calibration files are reported in one line")
    func badInput() throws {
        let r = try Self.run(["bench-attention", "--vit", "--patches", "64,x"])
        #expect(r.status != 0 && r.stderr.contains("--patches"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("badcal-\(UUID().uuidString).json")
        try Data(#"{"schema_version": 1, "fits": [{"kv": "f32", "kernel": "tiled", "mode": "sideways"}]}"#.utf8)
            .write(to: dir)
        defer { try? FileManager.default.removeItem(at: dir) }
        let b = try Self.run(["bench-attention", "--lengths", "16", "--repetitions", "1", "--calibration", dir.path])
        #expect(b.status == 1)
        #expect(b.stderr.contains(dir.lastPathComponent))
    }
}
