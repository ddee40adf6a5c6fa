// `train`: trains a model by name on Fashion-MNIST, MNIST or CIFAR-10 with SGD, Adam or AdamW and a schedule, with
// a live progress bar, a per-epoch CSV, an error-curve PNG and an atomic checkpoint each epoch in --out (locked for
// the run); --resume continues a run to bit-identical weights. The final test error is the last line printed.
// Ctrl-C or SIGTERM saves a checkpoint after the current step and exits with 130 or 143 (again: at once).
using System.CommandLine;
using Engine.Bench.Training;
using Engine.Models;
using Engine.Models.Training;

namespace Engine.Bench.Commands;

internal static class TrainCommand
{
    public static Command Create()
    {
        var binder = new TrainOptionsBinder();
        var model = new Option<string>("--model") { Description = "Model name, e.g. resnet20-a.", DefaultValueFactory = _ => "resnet20-a" };
        var output = new Option<string>("--out") { Description = "Folder for checkpoint, history.csv and errors.png.", DefaultValueFactory = _ => "out/train" };
        var resume = new Option<bool>("--resume") { Description = "Continue from the checkpoint in --out." };
        var command = new Command("train", "Trains a model on real data.") { model, output, resume };
        binder.AddTo(command);
        command.SetAction(result =>
        {
            string name = result.GetValue(model)!;
            ModelRegistry.Parse(name); // unknown names fail before any data is read
            var options = binder.Options(result, name); // so does an unknown optimizer
            var (train, test) = binder.LoadData(result);
            using var folder = TrainingRun.CheckOutput(result.GetValue(output)!, result.GetValue(resume)); // before any training
            Console.WriteLine($"data: {train.Count} training and {test.Count} evaluation images " +
                              $"{train.Channels}x{train.Height}x{train.Width} from {train.Source}");
            using var device = CommonOptions.OpenDevice(result.GetValue(binder.Device));
            using var trainer = new Trainer(device, options, train, test);
            using var interruption = new Interruption();
            if (!TrainingRun.Execute(trainer, ModelRegistry.Parse(name).Name, folder, result.GetValue(resume),
                    interruption.Token))
            {
                Console.Error.WriteLine($"interrupted by {interruption.SignalName} at iteration {trainer.Iteration} of " +
                                        $"{trainer.TotalIterations}: checkpoint saved to '{folder.Checkpoint}'; run " +
                                        "the same command with --resume to continue");
                return interruption.ExitCode;
            }
            var last = trainer.History[^1];
            Console.WriteLine($"final test error: {100 * last.TestError:F2}% (train error {100 * last.TrainError:F2}%, " +
                              $"{trainer.Iteration} iterations)");
            return 0;
        });
        return command;
    }
}
