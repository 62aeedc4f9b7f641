export { createGatehouseClient, GatehouseClient, type GatehouseClientOptions, type RequestOptions } from './client.ts';
export { GatehouseError, isGatehouseError, MfaRequiredError, type GatehouseErrorCode } from './errors.ts';
export { localStorageTokenStorage, memoryStorage, type StorageLike, type StoredTokens, type TokenStorage } from './storage.ts';
export type * from './types.ts';
