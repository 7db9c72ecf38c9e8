import Foundation
import LISAOpenAI

/// Where a model is in its life, with LISA's names.
public enum ModelStatus: String, Sendable, Codable, CaseIterable {
    case creating = "Creating"
    case inService = "InService"
    case starting = "Starting"
    case stopping = "Stopping"
    case stopped = "Stopped"
    case updating = "Updating"
    case deleting = "Deleting"
    case failed = "Failed"

    /// Whether requests are routed to the model in this status.
    public var servesTraffic: Bool { self == .inService || self == .updating }

    /// Whether a workflow step is under way (the controller will move the model on).
    public var isTransitional: Bool {
        switch self {
        case .creating, .starting, .stopping, .updating, .deleting: true
        case .inService, .stopped, .failed: false
        }
    }
}

/// What an administrator asks of a model through the API.
public enum ModelAction: String, Sendable, CaseIterable {
    case create, update, start, stop, delete
}

/// What the controller observes while carrying a workflow out.
public enum ModelEvent: Sendable, Equatable {
    /// The model's replicas are ready (or the change is applied).
    case ready
    /// The step failed; the model keeps the reason.
    case failed(String)
    /// Replicas drained and stopped.
    case stopped
}

/// The legal transitions of a model, as pure functions: the API and the controller both go
/// through them, so an illegal request is refused the same way wherever it comes from.
///
/// ```
///            create                ready
///   (none) ─────────▶ Creating ─────────▶ InService ◀──── ready ──── Updating
///                        │ failed           │  │ update ─────────────────▲
///                        ▼                  │  └ stop ─▶ Stopping ─stopped▶ Stopped
///                      Failed ◀─── failed ──┼──────────── Starting ◀─start─┘ │
///                        │ start/stop/delete│ delete                          │ delete
///                        └────────────────▶ Deleting ◀────────────────────────┘
/// ```
public enum ModelLifecycle {
    /// The status a model takes when `action` is requested in `current` (`nil`: no such
    /// model yet), or the reason it is refused.
    public static func status(after action: ModelAction, from current: ModelStatus?) -> Result<ModelStatus, LifecycleRefusal> {
        guard let current else {
            return action == .create ? .success(.creating) : .failure(LifecycleRefusal(action: action, current: nil))
        }
        let next: ModelStatus? =
            switch (action, current) {
            case (.create, _): nil
            // Metadata and scaling changes: applied through Updating while running, in place otherwise.
            case (.update, .inService): .updating
            case (.update, .stopped): .stopped
            case (.update, .failed): .failed
            case (.start, .stopped), (.start, .failed): .starting
            case (.stop, .inService), (.stop, .failed): .stopping
            // Deleting cancels a start that has not finished (a replica that never becomes ready
            // would otherwise hold the model until its startup timeout).
            case (.delete, .inService), (.delete, .stopped), (.delete, .failed), (.delete, .creating), (.delete, .starting): .deleting
            default: nil
            }
        guard let next else { return .failure(LifecycleRefusal(action: action, current: current)) }
        return .success(next)
    }

    /// The status after the controller observes `event` in `current`; `nil` when the event
    /// does not apply (for example a late `ready` after the model was deleted).
    public static func status(after event: ModelEvent, from current: ModelStatus) -> ModelStatus? {
        switch (event, current) {
        case (.ready, .creating), (.ready, .starting), (.ready, .updating): .inService
        case (.failed, .creating), (.failed, .starting), (.failed, .updating), (.failed, .inService): .failed
        case (.failed, .stopping): .failed
        case (.stopped, .stopping): .stopped
        default: nil
        }
    }
}

/// An action refused in the model's current status: answered 409 naming the status.
public struct LifecycleRefusal: Error, Sendable, Equatable {
    public let action: ModelAction
    public let current: ModelStatus?

    public var message: String {
        guard let current else { return "The model does not exist." }
        if action == .create { return "A model with this modelId already exists (status \(current.rawValue))." }
        return "Cannot \(action.rawValue) the model while it is \(current.rawValue)."
    }

    public init(action: ModelAction, current: ModelStatus? = nil) {
        self.action = action
        self.current = current
    }
}
