import { QUANTITY_FORMAT_MESSAGE, toNumber, tryParseQuantity } from '../quantity.js';

/** resource.ErrFormatWrong, word for word. */
export const QUANTITY_FORMAT_ERROR = QUANTITY_FORMAT_MESSAGE;

/** The value of a quantity (string or JSON number), or undefined when it is not one. */
export function quantityValue(q: unknown): number | undefined {
  if (typeof q !== 'string' && typeof q !== 'number') return undefined;
  const parsed = tryParseQuantity(q);
  return parsed && toNumber(parsed);
}

export function quantityString(q: unknown): string {
  return typeof q === 'string' ? q : String(q);
}
