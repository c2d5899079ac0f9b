import Testing
import AutoGLMPlanner
import AutoGLMSpecs
@testable import AutoGLMEngine

/// The attention cost model (AutoGLMPlanner) repeats the engine's work partition so that it can price a call
/// without the engine; these tests hold the two to the same sizes and rules.
@Suite("Attention cost model and engine agree on the work partition")
struct AttentionPlannerAgreementTests {
    @Test("key tile, query tile, lane target and the materialised kernel's block of rows")
    func sizes() {
        #expect(AttentionCostModel.keyTile == Attention.keyTile)
        #expect(AttentionCostModel.queryTile == Attention.queryTile)
        #expect(AttentionCostModel.laneTarget == Attention.laneTarget)
        #expect(AttentionCostModel.materialisedRows == Attention.materialisedRows)
    }

    @Test("rows per work item and the materialised block for every grouping of query heads up to 40")
    func rowsPerItem() {
        for group in 1...40 {
            let shape = AttentionLayerShape(heads: 2 * group, kvHeads: 2, headDim: 64)
            #expect(AttentionCostModel.rowsPerItem(shape) == Attention.rowsPerItem(group: group), "group \(group)")
            // The engine's block: `materialisedRows`, at most the lanes of a work item's buffers.
            let lanes = Attention.TiledScratch.lanes(heads: 2 * group, kvHeads: 2)
            let dense = AttentionSettingSpec(name: "m", kernel: .materialised)
            #expect(AttentionCostModel.materialisedBlockRows(dense, shape: shape)
                    == min(Attention.materialisedRows, lanes), "group \(group)")
        }
    }

    @Test("key ranges per work item for a grid of items, threads and stored keys")
    func keySplits() {
        for items in [1, 2, 3, 4, 6, 9] {
            for threads in [1, 2, 3, 4, 8] {
                for keys in [0, 511, 512, 1_024, 4_096, 32_768] {
                    #expect(AttentionCostModel.keySplits(items: items, threads: threads, keys: keys)
                            == Attention.keySplits(items: items, workers: threads, keys: keys),
                            "items \(items), threads \(threads), keys \(keys)")
                }
            }
        }
    }
}
