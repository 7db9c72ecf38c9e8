import LISAKit
import LISAKitTesting
import Testing

@Suite("Clocks")
struct ClockTests {
    @Test("a manual clock wakes a sleeper at its deadline and not before, through AnyClock too")
    func manualClock() async throws {
        let manual = ManualClock()
        let clock = AnyClock(manual)
        let sleeper = Task {
            try await clock.sleep(for: .seconds(10))
            return clock.seconds
        }
        while manual.sleepers == 0 { await Task.yield() }
        manual.advance(by: .milliseconds(9_990))
        #expect(manual.sleepers == 1, "still asleep 10 ms short of its deadline")
        manual.advance(by: .milliseconds(10))
        #expect(try await sleeper.value == 10)
        #expect(manual.sleepers == 0)
    }

    @Test("a cancelled sleeper throws at once and leaves the clock")
    func cancelledSleeper() async throws {
        let manual = ManualClock()
        let sleeper = Task { try await manual.sleep(for: .seconds(1)) }
        while manual.sleepers == 0 { await Task.yield() }
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(manual.sleepers == 0)
    }
}
