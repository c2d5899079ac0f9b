import Testing
@testable import AutoGLMEngine

@Suite("Attention tile timing")
struct AttentionTileTimingTests {
    @Test("The wide step is timed at each lane count asked for, in that order, per key")
    func samples() throws {
        let lanes = [17, 1, 30, 16]
        let samples = try AttentionTileTiming.measure(itemLanes: 30, headDim: 64, lanes: lanes, minTime: 0, rounds: 2)
        #expect(samples.map(\.lanes) == lanes)
        #expect(samples.allSatisfy { $0.secondsPerKey > 0 && $0.secondsPerKey.isFinite })
    }

    @Test("Lane counts outside the item, a head dim the tile cannot run and no rounds are refused",
          arguments: [(30, 64, [0], 1), (30, 64, [31], 1), (30, 64, [], 1), (30, 20, [4], 1), (0, 64, [1], 1),
                      (30, 64, [4], 0)])
    func refused(itemLanes: Int, headDim: Int, lanes: [Int], rounds: Int) {
        #expect(throws: AttentionError.self) {
            try AttentionTileTiming.measure(itemLanes: itemLanes, headDim: headDim, lanes: lanes, minTime: 0,
                                            rounds: rounds)
        }
    }
}
