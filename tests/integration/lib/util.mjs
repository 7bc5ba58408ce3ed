// util.mjs - waiting primitives shared by every integration test.
//
// Every wait in the suite goes through these so that nothing can hang: a
// broken server makes a test fail with a message saying what it waited for,
// never stalls the run.  Polling (not events) keeps waitFor usable with any
// state a test can read.

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Resolves once predicate() is truthy (returning that value); rejects after ms.
export async function waitFor(predicate, ms = 3000, what = 'condition') {
    const deadline = Date.now() + ms;
    for (;;) {
        const value = await predicate();
        if (value) return value;
        if (Date.now() >= deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
        await sleep(10);
    }
}

// Races promise against a timer; the timer never keeps the process alive.
export function withTimeout(promise, ms, what = 'operation') {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
        timer.unref?.();
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A promise plus the functions that settle it.
export function deferred() {
    let resolve, reject;
    const promise = new Promise((res, rej) => {
        resolve = res;
        reject = rej;
    });
    return { promise, resolve, reject };
}

// Settles to {ok:true,value} or {ok:false,error}; for asserting that something rejects within a bound.
export function settle(promise) {
    return promise.then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }));
}

// Short unique suffix so tests sharing a server never share hub, user or group names.
let counter = 0;
export function uniq(prefix) {
    counter += 1;
    return `${prefix}${process.pid % 1000}x${counter}`;
}
