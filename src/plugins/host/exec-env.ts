/** Variable carrying the server's pid to `iocmng __exec` (removed before the program starts). */
export const EXEC_PARENT_ENV = "IOCMNG_EXEC_PARENT";
