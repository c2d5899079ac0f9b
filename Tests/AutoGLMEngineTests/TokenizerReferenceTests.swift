// Expected token ids for SmolLM2's tokenizer, computed once with llama.cpp (llama-cpp-python 0.3.36, vocab only,
// from this same GGUF file) and confirmed identical with Hugging Face `tokenizers` 0.23 configured as SmolLM2
// (BPE with the file's vocabulary and merges, Digits(individual_digits) + ByteLevel pre-tokenizer).

struct ReferenceCase: Sendable, CustomStringConvertible {
    let text: String
    /// Ids with special tokens treated as plain text.
    let plain: [Int32]
    /// Ids with control tokens recognised in the text.
    let special: [Int32]
    init(_ text: String, plain: [Int32], special: [Int32]) {
        self.text = text
        self.plain = plain
        self.special = special
    }
    var description: String { String(reflecting: text) }
}

struct LicenceReference: Sendable {
    let bytes: Int
    let count: Int
    /// FNV-1a 64 over the ids, each as 4 little-endian bytes.
    let fnv: UInt64
}

enum TokenizerReference {
    static let cases: [ReferenceCase] = [
        ReferenceCase("Hello, world!",
                      plain: [19556,28,905,17],
                      special: [19556,28,905,17]),
        ReferenceCase("I'm sure they don't know what we'll do; it's John's car, isn't it? They've said I'd go.",
                      plain: [57,5248,2090,502,1326,982,699,732,392,3060,536,43,357,506,2322,506,1076,28,3247,982,357,47,1069,3543,1137,339,6737,685,30],
                      special: [57,5248,2090,502,1326,982,699,732,392,3060,536,43,357,506,2322,506,1076,28,3247,982,357,47,1069,3543,1137,339,6737,685,30]),
        ReferenceCase("In 2024, 3.14159 × 42 = 131.95 and 1,000,000 people.",
                      plain: [788,216,34,32,34,36,28,216,35,30,33,36,33,37,41,15493,216,36,34,446,216,33,35,33,30,41,37,284,216,33,28,32,32,32,28,32,32,32,701,30],
                      special: [788,216,34,32,34,36,28,216,35,30,33,36,33,37,41,15493,216,36,34,446,216,33,35,33,30,41,37,284,216,33,28,32,32,32,28,32,32,32,701,30]),
        ReferenceCase("multiple   spaces\tand\ttabs\n\nnew lines\n  indented\r\nwindows",
                      plain: [30404,256,5600,197,397,197,100,7366,198,198,2241,3204,3805,641,6574,201,198,37066],
                      special: [30404,256,5600,197,397,197,100,7366,198,198,2241,3204,3805,641,6574,201,198,37066]),
        ReferenceCase("Café crème brûlée — naïve résumé",
                      plain: [51,1939,2756,1650,11180,1558,1156,41307,92,20174,1841,15486,46494,412,2756,5422,2756],
                      special: [51,1939,2756,1650,11180,1558,1156,41307,92,20174,1841,15486,46494,412,2756,5422,2756]),
        ReferenceCase("中文分词测试：你好，世界！",
                      plain: [28589,29184,37349,16313,231,43222,229,16313,239,24713,18645,250,48392,138,12831,7906,240,178,239,230,8083,219],
                      special: [28589,29184,37349,16313,231,43222,229,16313,239,24713,18645,250,48392,138,12831,7906,240,178,239,230,8083,219]),
        ReferenceCase("Emoji: 🙂🚀👍🏽 and ❤\u{FE0F} ok",
                      plain: [10809,33777,42,47526,10813,244,218,10813,235,231,10813,233,138,284,4636,247,114,31752,10907],
                      special: [10809,33777,42,47526,10813,244,218,10813,235,231,10813,233,138,284,4636,247,114,31752,10907]),
        ReferenceCase("def f(x):\n    return x**2  # square\n",
                      plain: [1604,275,24,104,727,472,1003,1792,828,34,216,907,5222,198],
                      special: [1604,275,24,104,727,472,1003,1792,828,34,216,907,5222,198]),
        ReferenceCase("  leading and trailing spaces  ",
                      plain: [216,2899,284,35079,5600,256],
                      special: [216,2899,284,35079,5600,256]),
        ReferenceCase("HELLO'S WORLD'S 'quoted' \"double\"",
                      plain: [56,4210,6426,23,67,35612,16284,23,67,637,385,5036,23,476,21414,18],
                      special: [56,4210,6426,23,67,35612,16284,23,67,637,385,5036,23,476,21414,18]),
        ReferenceCase("١٢٣ ٤٥ Ⅻ ½ ²",
                      plain: [164,111,164,112,164,113,216,164,114,164,115,216,173,223,121,216,16738,216,19133],
                      special: [164,111,164,112,164,113,216,164,114,164,115,216,173,223,121,216,16738,216,19133]),
        ReferenceCase("<|im_start|>user\nHi<|im_end|>\n",
                      plain: [44,108,306,79,3738,108,46,4093,198,26843,44,108,306,79,486,108,46,198],
                      special: [1,4093,198,26843,2,198]),
        ReferenceCase("",
                      plain: [],
                      special: []),
        ReferenceCase(" ",
                      plain: [216],
                      special: [216]),
        ReferenceCase("\n\n\n",
                      plain: [16506],
                      special: [16506]),
        ReferenceCase("a\u{A0}b\u{3000}c",
                      plain: [81,15442,82,12109,218,83],
                      special: [81,15442,82,12109,218,83]),
    ]

    /// Token count and id checksum of each file in /usr/share/common-licenses (symlinks skipped).
    static let licences: [String: LicenceReference] = [
        "Apache-2.0": LicenceReference(bytes: 11358, count: 2215, fnv: 13466945569061773264),
        "Artistic": LicenceReference(bytes: 6111, count: 1320, fnv: 6431765431512284549),
        "BSD": LicenceReference(bytes: 1499, count: 377, fnv: 229561101293709872),
        "CC0-1.0": LicenceReference(bytes: 7048, count: 1562, fnv: 9123570303649782244),
        "GFDL-1.2": LicenceReference(bytes: 20432, count: 4592, fnv: 1125564014299176316),
        "GFDL-1.3": LicenceReference(bytes: 22955, count: 5201, fnv: 12288778541108657578),
        "GPL-1": LicenceReference(bytes: 12632, count: 2894, fnv: 11538239462405968607),
        "GPL-2": LicenceReference(bytes: 18092, count: 4039, fnv: 5227469790218228729),
        "GPL-3": LicenceReference(bytes: 35149, count: 7639, fnv: 14429673959601343848),
        "LGPL-2": LicenceReference(bytes: 25381, count: 5602, fnv: 7772953602840995991),
        "LGPL-2.1": LicenceReference(bytes: 26530, count: 5865, fnv: 9483529754436996583),
        "LGPL-3": LicenceReference(bytes: 7652, count: 1607, fnv: 3210583268703727788),
        "MPL-1.1": LicenceReference(bytes: 25755, count: 5607, fnv: 15293193312383312209),
        "MPL-2.0": LicenceReference(bytes: 16726, count: 3669, fnv: 9137199049275762813),
    ]
}
