import AutoGLMSpecs
import Foundation
import Testing

@Suite("UTC timestamps")
struct UTCTimestampTests {
    @Test("ISO 8601 with seconds in UTC, zero-padded, fractions dropped",
          arguments: [(1_796_584_935.0, "2026-12-06T19:22:15Z"), (951_782_400.9, "2000-02-29T00:00:00Z"),
                      (0.0, "1970-01-01T00:00:00Z"), (1_704_067_199.0, "2023-12-31T23:59:59Z")])
    func formats(seconds: Double, expected: String) {
        #expect(UTCTimestamp.string(Date(timeIntervalSince1970: seconds)) == expected)
    }

    @Test("the same text as Foundation's internet date-time formatter")
    func matchesFoundation() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        for seconds in stride(from: 0.0, to: 4e9, by: 123_456_789.0) {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(UTCTimestamp.string(date) == formatter.string(from: date))
        }
    }
}
