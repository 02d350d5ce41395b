export {};
//# sourceMappingURL=scenario.js.map
