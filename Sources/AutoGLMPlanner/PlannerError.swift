import Foundation
import AutoGLMSpecs

/// Errors the planner raises for requests it cannot act on (as opposed to infeasible requests, which produce a plan
/// with `feasible == false`). Each case reads as one line naming what was wrong and what was expected.
public enum PlannerError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A `--pin` argument that is not `GLOB=FORMAT` or names an unknown format.
    case invalidPin(pin: String, expected: String)
    /// A pin whose glob matches no module of the model.
    case pinMatchesNothing(pin: String, modules: [String])
    /// A pinned format that no compute unit of the device executes.
    case pinnedFormatIllegal(pin: String, format: WeightFormat, device: String)
    /// No compute unit of the device can execute any format for a module.
    case noLegalFormat(module: String, device: String)
    /// A constraint value out of range.
    case invalidConstraint(name: String, expected: String, found: String)

    public var description: String {
        switch self {
        case let .invalidPin(pin, expected):
            return "--pin '\(pin)': expected \(expected)"
        case let .pinMatchesNothing(pin, modules):
            return "--pin '\(pin)': the glob matches no module (modules: \(modules.joined(separator: ", ")))"
        case let .pinnedFormatIllegal(pin, format, device):
            return "--pin '\(pin)': no compute unit of \(device) executes \(format.rawValue)"
        case let .noLegalFormat(module, device):
            return "module '\(module)': no compute unit of \(device) executes a format that can store it"
        case let .invalidConstraint(name, expected, found):
            return "\(name): expected \(expected), found \(found)"
        }
    }
}
