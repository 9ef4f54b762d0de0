export const MODEL_LIB = 'model';
