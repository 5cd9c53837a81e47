// The token scopes a request asks for (distribution spec: `repository:<name>:<actions>`).

export const pull = (repository: string) => [`repository:${repository}:pull`];
export const push = (repository: string) => [`repository:${repository}:pull,push`];
/** A delete's scopes: push and delete. */
export const remove = (repository: string) => [...push(repository), `repository:${repository}:delete`];
