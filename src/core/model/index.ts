export { SteelLM, paramShapes } from './gpt';
export { applyRotary, causalMask, linear, rmsNorm, rotaryTables } from './layers';
