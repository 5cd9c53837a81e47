export declare const GO: string;
export declare const INSTALL_HINT: string;
export declare function referrersRegistryBinaryPath(): string;
export declare function missingBuildTools(): string[];
export declare function buildReferrersRegistry(): Promise<string>;
