/** Where the built console lives (packages/admin-console/dist). */
export declare const consoleDist: string;
/** Whether dist/ is missing or older than a source file. */
export declare function adminConsoleIsStale(): boolean;
/** Builds when stale (or always, with force); resolves to whether it built. */
export declare function buildAdminConsole(options?: { force?: boolean; quiet?: boolean }): Promise<boolean>;
