// Memberwise initialisers for building device profiles in code (host calibration writes one).

extension DeviceProfile {
    public init(schemaVersion: Int = DeviceProfile.currentSchemaVersion, id: String, name: String, kind: Kind,
                memory: Memory, computeUnits: [ComputeUnit], interconnect: Interconnect? = nil,
                efficiency: [OpClass: Sourced<Double>], matvecBandwidthByFormat: [WeightFormat: Sourced<Double>] = [:],
                matvecCallSecondsByFormat: [WeightFormat: Sourced<Double>] = [:],
                sustainedFactor: Sourced<Double>, runtimeOverheadBytes: Sourced<Int>,
                measuredWith: MeasurementContext? = nil, notes: String? = nil) {
        self.schemaVersion = schemaVersion; self.id = id; self.name = name; self.kind = kind; self.memory = memory
        self.computeUnits = computeUnits; self.interconnect = interconnect; self.efficiency = efficiency
        self.matvecBandwidthByFormat = matvecBandwidthByFormat
        self.matvecCallSecondsByFormat = matvecCallSecondsByFormat
        self.sustainedFactor = sustainedFactor; self.runtimeOverheadBytes = runtimeOverheadBytes
        self.measuredWith = measuredWith; self.notes = notes
    }
}

extension DeviceProfile.ComputeUnit {
    public init(id: String, kind: Kind, count: Int = 1, clusters: [DeviceProfile.Cluster] = [],
                peakOpsPerSecond: [ComputePrecision: Sourced<Double>], formats: [WeightFormat],
                memoryBytes: Sourced<Int>? = nil, bandwidthBytesPerSecond: Sourced<Double>? = nil) {
        self.id = id; self.kind = kind; self.count = count; self.clusters = clusters
        self.peakOpsPerSecond = peakOpsPerSecond; self.formats = formats; self.memoryBytes = memoryBytes
        self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
    }
}
