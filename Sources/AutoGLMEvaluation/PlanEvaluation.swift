import AutoGLMEngine
import AutoGLMSpecs
import Foundation

/// Evaluates a loaded model against a reference model (normally the same checkpoint with every weight
/// dequantised to F32) over a text, llama.cpp style.
public enum PlanEvaluation {
    /// Tokenises `text` with the plan checkpoint's tokenizer and compares the two models window by window.
    public static func evaluate(plan: LoadedCheckpoint, reference: DecoderModel, text: String, textName: String,
                                settings: EvaluationSettings, attention: AttentionSettings = .init(),
                                pool: ComputePool?) throws -> (summary: AccuracySummary, comparisons: [TokenComparison]) {
        try settings.validate()
        let tokenizer = plan.tokenizer
        var s = settings
        if s.bosToken == nil, tokenizer.addsBOS { s.bosToken = tokenizer.bosTokenID }
        let tokens = tokenizer.encode(text)
        let planSession = try InferenceSession(model: plan.model, capacity: s.context, batch: s.context,
                                               attention: attention, pool: pool)
        let refSession = try InferenceSession(model: reference, capacity: s.context, batch: s.context,
                                              attention: AttentionSettings(kvCacheFormat: .f32), pool: pool)
        let comparisons = try WindowedEvaluation.compare(tokens: tokens, settings: s, reference: refSession,
                                                         plan: planSession, textName: textName)
        return (try AccuracySummary(comparisons), comparisons)
    }
}
