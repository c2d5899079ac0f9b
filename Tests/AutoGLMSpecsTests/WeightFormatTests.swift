import Testing
import AutoGLMSpecs

@Suite("Weight format layouts")
struct WeightFormatTests {
    @Test(arguments: [
        (WeightFormat.q8_0, 32, 34.0, 8.5), (.q4_0, 32, 18, 4.5), (.q4_1, 32, 20, 5.0), (.q4K, 256, 144, 4.5),
        (.q6K, 256, 210, 6.5625), (.int4g32, 32, 20, 5.0), (.int4g64, 64, 36, 4.5), (.int4g128, 128, 68, 4.25),
        (.f16, 1, 2, 16), (.bf16, 1, 2, 16), (.f32, 1, 4, 32),
    ])
    func blockSizes(format: WeightFormat, elements: Int, bytes: Double, bits: Double) {
        #expect(format.blockElements == elements)
        #expect(format.blockBytes == bytes)
        #expect(format.nominalBits == bits)
    }

    @Test func matrixBytesIncludeScales() {
        #expect(WeightFormat.q4_0.bytes(rows: 4096, columns: 4096) == 4096 * 128 * 18)
        #expect(WeightFormat.int8.bytes(rows: 10, columns: 64) == 10 * 64 + 40)
        #expect(abs(WeightFormat.nf4.nominalBits - 4.127) < 0.001)
        #expect(abs(WeightFormat.gptqInt4g128.nominalBits - 4.15625) < 1e-9)
        #expect(WeightFormat.q4_0.canStore(columns: 1176) == false)
        #expect(WeightFormat.f16.canStore(columns: 1176))
    }

    /// Every format has an executed stand-in; executed formats stand for themselves.
    @Test(arguments: WeightFormat.allCases)
    func engineFormatIsExecuted(format: WeightFormat) {
        #expect(format.engineFormat.engineExecutes)
        #expect((format.engineFormat == format) == format.engineExecutes)
    }

    /// The format a row is stored in: INT4 groups step down to the largest group that divides it, others take F16.
    @Test(arguments: [
        (WeightFormat.int4g128, 576, WeightFormat.int4g64), (.int4g128, 1536, .int4g128), (.int4g128, 96, .int4g32),
        (.int4g64, 96, .int4g32), (.int4g128, 1176, .f16), (.int4g32, 1176, .f16), (.q4_0, 576, .q4_0),
        (.q4_0, 1176, .f16), (.q4K, 576, .f16), (.f32, 7, .f32),
    ])
    func storedFormat(requested: WeightFormat, columns: Int, stored: WeightFormat) {
        #expect(requested.stored(columns: columns) == stored)
    }
}
