/**
 * jstat 1.9 is a CommonJS module without type declarations (and there is no @types/jstat). This
 * declares the one function we use: the Student t quantile (node_modules/jstat/dist/jstat.js,
 * `jStat.studentt.inv(p, dof)`), reached through the default import of its module.exports.
 */
declare module 'jstat' {
  const jstat: {
    jStat: {
      studentt: {
        /** The p-quantile of Student's t distribution with `dof` degrees of freedom. */
        inv(p: number, dof: number): number;
      };
    };
  };
  export default jstat;
}
